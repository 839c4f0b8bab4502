# The spatial-relation question's parameters, read from its text inside the session (toolbox
# with question_reader=True): the relation asked, the frame or reference object, the options.
import re


def read_question(question):
    """(ask, frame_colour, reference, options); ask is "inside", "closest" or "farthest"."""
    options = []
    for line in question.splitlines():
        if line.startswith("Options:"):
            options = [part.strip() for part in re.split(r"\([A-H]\)", line[len("Options:"):])[1:]]
    inside = re.search(r"inside the (\w+) frame", question)
    if inside:
        return "inside", inside.group(1), "", options
    near = re.search(r"(closest to|farthest from) the (.+?) \(measuring", question)
    if near is None:
        raise ValueError("not a spatial-relation question: no frame and no reference object in it")
    return near.group(1).split()[0], "", near.group(2), options
