# The photo-collage question's parameters, read from its text inside the session (toolbox with
# question_reader=True): what to report about the pasted patch, and the options.
import re


def read_question(question):
    """(ask, options): "colour", "shape" or "code", and the texts of the options ([] for a code)."""
    if "What colour" in question:
        ask = "colour"
    elif "What shape" in question:
        ask = "shape"
    else:
        ask = "code"
    for line in question.splitlines():
        if line.startswith("Options:"):
            return ask, [part.strip() for part in re.split(r"\([A-H]\)", line[len("Options:"):])[1:]]
    return ask, []
