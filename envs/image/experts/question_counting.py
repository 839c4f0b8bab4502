# The counting question's parameters, read from its text inside the session (toolbox with
# question_reader=True): what the expert would otherwise restate word for word.
import re


def read_question(question):
    """(colour, shape) of "How many <colour> <shape>s are there ...?"."""
    found = re.search(r"How many (\w+) (\w+?)s\b", question)
    if found is None:
        raise ValueError("not a counting question: no 'How many <colour> <shapes>' in it")
    return found.group(1), found.group(2)
