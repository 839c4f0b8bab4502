"""The HTML pages' shared setup: the package's jinja2 templates (``templates/``)."""

from __future__ import annotations

from pathlib import Path

import jinja2

from pyvision_gym import __version__

__all__ = ["TEMPLATES_DIR", "template_environment"]

TEMPLATES_DIR = Path(__file__).with_name("templates")


def template_environment() -> jinja2.Environment:
    """The jinja2 environment for the package's HTML templates (autoescaping on)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["version"] = __version__
    return env

