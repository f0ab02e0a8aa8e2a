"""The Jinja environment of the pages ``comms`` writes itself: the effectiveness report and the preview gallery.

The templates ship inside the package (``comms/reports/html/*.j2``, declared as package data), so a
plain ``pip install`` has them. Autoescape is on for every template and undefined names raise
(``StrictUndefined``): values are handed over as data, text people typed shows as text, and a name
the template expects but is not given is an error instead of a blank. ``None`` renders as nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined

__all__ = ["render_page"]


def _nothing_for_none(value: object) -> object:
    return "" if value is None else value


def _coordinate(value: float) -> str:
    """An SVG coordinate with one decimal."""
    return f"{value:.1f}"


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("comms.reports", "html"),
        autoescape=True,
        undefined=StrictUndefined,
        finalize=_nothing_for_none,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    environment.filters["coordinate"] = _coordinate
    return environment


def render_page(template: str, data: Mapping[str, object]) -> str:
    """The page ``template`` (a file name under ``comms/reports/html/``) rendered with ``data``."""
    return _environment().get_template(template).render(data)
