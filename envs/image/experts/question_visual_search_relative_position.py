# The relative-position question's parameters, read from its text inside the session (toolbox
# with question_reader=True): the two tiny objects (the first is the one asked about), options.
import re


def read_question(question):
    """(a_colour, a_shape, b_colour, b_shape, options): where is object a relative to object b."""
    options = ["left", "right", "above", "below"]
    for line in question.splitlines():
        if line.startswith("Options:"):
            options = [part.strip() for part in re.split(r"\([A-H]\)", line[len("Options:"):])[1:]]
    head, asked = question.split("Where is the tiny ", 1)
    named = re.findall(r"tiny (\w+) (\w+)", head)
    first = asked.split(" relative")[0]
    a = next(n for n in named if f"{n[0]} {n[1]}" == first)
    b = next(n for n in named if n != a)
    return a[0], a[1], b[0], b[1], options
