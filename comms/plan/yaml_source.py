"""Reading YAML while keeping the line of every key, so problems can name file and line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from comms.errors import Problem

__all__ = ["Loc", "YamlDocument", "read_yaml"]

Loc = tuple[str | int, ...]


@dataclass
class YamlDocument:
    """A parsed YAML file: its data and the 1-based line of each key path."""

    path: Path
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int | None:
        """The line of ``loc`` or of its nearest known ancestor."""
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)


def read_yaml(path: Path, *, display: str) -> YamlDocument | Problem:
    """Parse ``path``; return the document, or a Problem naming the file and line of a syntax error."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return Problem(display, f"cannot read file: {exc.strerror or exc}")
    except UnicodeDecodeError:
        return Problem(display, "file is not UTF-8 text")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        reason = exc.problem or exc.context or "invalid YAML"
        return Problem(display, f"YAML syntax error: {reason}", line)
    except yaml.YAMLError as exc:
        return Problem(display, f"YAML error: {exc}")
    duplicate = _first_duplicate_key(node)
    if duplicate is not None:
        key, line, first = duplicate
        return Problem(display, f"duplicate key {key!r} (first given on line {first}); each key may appear once", line)
    lines: dict[Loc, int] = {}
    if node is not None:
        lines[()] = node.start_mark.line + 1
        _index(node, (), lines)
    return YamlDocument(path=path, data=data, lines=lines)


def _first_duplicate_key(node: yaml.Node | None) -> tuple[str, int, int] | None:
    """(key, its line, the line it was first given on) of the first key repeated in one mapping, or None."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key, line = str(key_node.value), key_node.start_mark.line + 1
            if key in seen:
                return key, line, seen[key]
            seen[key] = line
            found = _first_duplicate_key(value_node)
            if found is not None:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found = _first_duplicate_key(item)
            if found is not None:
                return found
    return None


def _index(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*loc, str(key_node.value))
            lines[key] = key_node.start_mark.line + 1
            _index(value_node, key, lines)
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            key = (*loc, position)
            lines[key] = item.start_mark.line + 1
            _index(item, key, lines)
