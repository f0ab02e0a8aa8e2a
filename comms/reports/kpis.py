"""The migration's own KPIs (uptime, error rate, p95 latency, support volume, satisfaction...).

A KPI file is a flat YAML or JSON mapping of name -> value, for example::

    uptime: "99.97 %"
    error_rate: "0.3 %"
    p95_latency: 290 ms

Values are kept as the text a person wrote (numbers become their text), in file order, and stored
on the cutover (``CutoverRow.metrics_json``). The T+1 week ``success-metrics`` message reads them
as ``metrics.kpis`` (see ``comms.reports.metrics.communication_metrics``), so they must be set before it is sent.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import yaml

from comms.errors import InputError
from comms.reports.metrics import stored_kpis
from comms.store import repository as repo
from comms.store.engine import Engine

__all__ = ["MAX_KPIS", "MAX_VALUE_LENGTH", "load_kpis", "read_kpis", "store_kpis"]

MAX_KPIS = 100
MAX_VALUE_LENGTH = 500


def load_kpis(path: Path) -> dict[str, str]:
    """Read and check a KPI file; InputError naming the file for anything wrong with it."""
    where = f"--file {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: cannot read it ({exc})") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise InputError(f"{where}: not valid {kind}: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict) or not data:
        raise InputError(
            f"{where}: expected a mapping of KPI name -> value (e.g. 'uptime: 99.97 %'), "
            f"got {'nothing' if not data else type(data).__name__}"
        )
    if len(data) > MAX_KPIS:
        raise InputError(f"{where}: {len(data)} KPIs; at most {MAX_KPIS} fit in a message")
    kpis: dict[str, str] = {}
    for name, value in data.items():
        key = str(name).strip() if isinstance(name, str | int | float) and not isinstance(name, bool) else ""
        if not key:
            raise InputError(f"{where}: KPI names must be non-empty text, got {name!r}")
        if isinstance(value, dict | list) or value is None:
            raise InputError(
                f"{where}: KPI {key!r} must have a single value (text or number), got "
                f"{'nothing' if value is None else type(value).__name__}"
            )
        text_value = str(value).strip()
        if not text_value or len(text_value) > MAX_VALUE_LENGTH:
            raise InputError(f"{where}: KPI {key!r} must have a value of 1 to {MAX_VALUE_LENGTH} characters")
        kpis[key] = text_value
    return kpis


def store_kpis(engine: Engine, cutover_name: str | None, path: Path, *, now: datetime) -> dict[str, str]:
    """Load the KPI file and store it on the cutover (replacing earlier KPIs); return what was stored."""
    kpis = load_kpis(path)
    repo.set_cutover_kpis(engine, cutover_name, json.dumps(kpis, ensure_ascii=False), now=now)  # file order kept
    return kpis


def read_kpis(engine: Engine, cutover_name: str | None) -> dict[str, str]:
    """The KPIs stored on the cutover (name -> value, in file order); empty when none were set."""
    return stored_kpis(repo.load_cutover(engine, cutover_name))
