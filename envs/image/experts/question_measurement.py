# The measurement question's parameters, read from its text inside the session (toolbox with
# question_reader=True): what to measure and the colours of the lines or shape involved.
import re


def read_question(question):
    """(kind, colours): kind "length", "angle" or "area"."""
    if "length" in question:
        return "length", re.findall(r"of the (\w+) line segment", question)[:1]
    if "smaller angle" in question:
        return "angle", list(re.findall(r"The (\w+) line and the (\w+) line", question)[0])
    return "area", re.findall(r"area of the (\w+) ", question)[:1]
