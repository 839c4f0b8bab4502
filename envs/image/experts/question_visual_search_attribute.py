# The tiny-object question's parameters, read from its text inside the session (toolbox with
# question_reader=True): the attribute asked, the one given, and the options.
import re


def read_question(question):
    """(ask, known, options): ask "colour" (known: the shape) or "shape" (known: the colour)."""
    options = []
    for line in question.splitlines():
        if line.startswith("Options:"):
            options = [part.strip() for part in re.split(r"\([A-H]\)", line[len("Options:"):])[1:]]
    if "What colour is it?" in question:
        return "colour", re.search(r"a tiny (\w+),", question).group(1), options
    return "shape", re.search(r"a tiny (\w+) shape", question).group(1), options
