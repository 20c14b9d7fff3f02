"""Jinja2 rendering of `templates/<platform>/<name>.j2`, strict about undefined variables."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from dzops.resources import templates_dir

TEMPLATES_DIR = templates_dir()


@lru_cache(maxsize=1)
def environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,  # a missing variable is a bug in the plan, never an empty line
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render(platform: str, name: str, **context: Any) -> str:
    """Render templates/<platform>/<name>.j2 with the given context."""
    return environment().get_template(f"{platform}/{name}.j2").render(**context)
