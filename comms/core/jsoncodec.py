"""JSON for stored payloads that hold aware datetimes and timedeltas."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

__all__ = ["dumps", "loads"]


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, timedelta):
        return {"$td": value.total_seconds()}
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def _hook(obj: dict[str, Any]) -> object:
    if obj.keys() == {"$dt"}:
        return datetime.fromisoformat(obj["$dt"])
    if obj.keys() == {"$td"}:
        return timedelta(seconds=obj["$td"])
    return obj


def dumps(value: Any) -> str:
    """Encode, keeping datetimes and timedeltas recoverable."""
    return json.dumps(value, default=_default, sort_keys=True, ensure_ascii=False)


def loads(text: str | None) -> Any:
    """Decode what ``dumps`` wrote (None for an empty column)."""
    return None if text is None else json.loads(text, object_hook=_hook)
