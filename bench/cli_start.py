"""Wall time of a quick CLI command, beside the interpreter's own start, and what the imports cost.

    python bench/cli_start.py [--runs 15]

Times (median of N runs, each a fresh process):
- ``python -c pass``                                    the interpreter floor
- ``python -c "import comms.cli"``                      importing the CLI and every command module
- ``comms timeline --start 2026-12-05T22:00:00Z --json`` the measured command (console script), run
  from the repository root so it reads the default plan
- ``comms validate``, first run (an empty template cache: every template compiles and is written) and
  second run (the compiled templates come from the cache), with ``COMMS_CACHE_DIR`` in a temp folder

Then one ``python -X importtime`` run of the command: the heaviest imports by cumulative time with the
module that pulled each in, and whether any vendor SDK (which must stay lazy) was imported at all.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

TARGET_S = 0.6
VALIDATE_TARGET_S = 0.5
COMMAND_ARGS = ["timeline", "--start", "2026-12-05T22:00:00Z", "--json"]
SDKS = ("sendgrid", "python_http_client", "slack_sdk", "apscheduler", "httpx", "icalendar", "requests")
WATCH = (
    "sqlalchemy",
    "sqlmodel",
    "comms.bootstrap",
    "comms.delivery.dispatcher",
    "comms.store.tables",
    "jinja2",
    "email_validator",
    "pydantic",
    "rich.console",
    "typer",
    "yaml",
    "comms.plan.models",
    "comms.plan.audiences",
)


def _comms_executable() -> list[str]:
    script = Path(sys.executable).parent / "comms"
    return [str(script)] if script.exists() else [sys.executable, "-m", "comms"]


def _time(argv: list[str], runs: int, env: dict[str, str]) -> list[float]:
    samples = []
    subprocess.run(argv, cwd=_common.REPO_ROOT, env=env, capture_output=True, check=True)  # warm the page cache
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            argv, cwd=_common.REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
        )
        samples.append(time.perf_counter() - started)
    return samples


def _time_validate(runs: int, env: dict[str, str], cache: Path) -> tuple[list[float], list[float]]:
    """``comms validate`` wall times: each first run starts from an empty cache, each second run from a full one."""
    argv = [*_comms_executable(), "validate"]
    first, second = [], []
    for _ in range(runs):
        for samples in (first, second):
            if samples is first:
                shutil.rmtree(cache, ignore_errors=True)
            started = time.perf_counter()
            subprocess.run(argv, cwd=_common.REPO_ROOT, env=env, stdout=subprocess.DEVNULL, check=True)
            samples.append(time.perf_counter() - started)
    return first, second


def _importtime(env: dict[str, str]) -> list[tuple[str, int, int, str]]:
    """(module, self us, cumulative us, importer) for every module the command imported."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "comms", *COMMAND_ARGS],
        cwd=_common.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    entries: list[tuple[int, str, int, int]] = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line.removeprefix("import time:").split("|")
        self_us, cumulative, raw_name = int(parts[0]), int(parts[1]), parts[2]
        depth = (len(raw_name) - len(raw_name.lstrip(" "))) // 2
        entries.append((depth, raw_name.strip(), self_us, cumulative))
    # importtime prints children before their parent; the parent of an entry is the next one shallower.
    out = []
    for index, (depth, name, self_us, cumulative) in enumerate(entries):
        importer = "-"
        for later_depth, later_name, _, _ in entries[index + 1 :]:
            if later_depth < depth:
                importer = later_name
                break
        out.append((name, self_us, cumulative, importer))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMS_")}
    env["COLUMNS"] = "200"
    cache = Path(tempfile.mkdtemp(prefix="comms-bench-cache-")) / "comms"
    env["COMMS_CACHE_DIR"] = str(cache)  # never the developer's ~/.cache

    _common.print_machine()
    bare = _time([sys.executable, "-c", "pass"], args.runs, env)
    imports = _time([sys.executable, "-c", "import comms.cli"], args.runs, env)
    command = _time([*_comms_executable(), *COMMAND_ARGS], args.runs, env)
    validate_first, validate_second = _time_validate(args.runs, env, cache)
    shutil.rmtree(cache.parent, ignore_errors=True)
    med = statistics.median
    print(f"cli start: median of {args.runs} runs (min .. max)")
    print(f"  python -c pass                 {med(bare):6.3f} s  ({min(bare):.3f} .. {max(bare):.3f})")
    print(f"  python -c 'import comms.cli'   {med(imports):6.3f} s  ({min(imports):.3f} .. {max(imports):.3f})")
    print(f"  comms {' '.join(COMMAND_ARGS)}")
    print(f"                                 {med(command):6.3f} s  ({min(command):.3f} .. {max(command):.3f})")
    print(f"  target <= {TARGET_S} s: {'met' if med(command) <= TARGET_S else 'MISSED'}")
    print("  comms validate")
    for label, samples in (("first run, empty cache", validate_first), ("second run, cached", validate_second)):
        print(f"    {label:28s} {med(samples):6.3f} s  ({min(samples):.3f} .. {max(samples):.3f})")
    second_met = med(validate_second) <= VALIDATE_TARGET_S
    print(f"  validate second run target <= {VALIDATE_TARGET_S} s: {'met' if second_met else 'MISSED'}")

    modules = _importtime(env)
    names = {name for name, *_ in modules}
    sdks = sorted(name for name in names if name.split(".")[0] in SDKS)
    print()
    print(f"  vendor SDKs imported by the command: {', '.join(sdks) if sdks else 'none (lazy, as required)'}")
    print("  heaviest imports (python -X importtime, cumulative ms; importtime inflates absolute figures):")
    comms_top = [m for m in modules if m[0].startswith("comms") or m[0] in WATCH]
    for name, _self_us, cumulative, importer in sorted(comms_top, key=lambda m: -m[2])[:18]:
        print(f"    {cumulative / 1000:7.1f} ms  {name:34s} imported by {importer}")
    summary = {
        "python_pass_s": round(med(bare), 3),
        "import_comms_cli_s": round(med(imports), 3),
        "timeline_json_s": round(med(command), 3),
        "validate_first_s": round(med(validate_first), 3),
        "validate_second_s": round(med(validate_second), 3),
        "sdks_imported": sdks,
    }
    print("SUMMARY " + json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
