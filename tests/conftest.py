"""Shared fixtures and options of the whole suite.

Living in ``tests/``, this file also puts ``tests/`` on ``sys.path`` (pytest's rootdir-conftest
rule), which is how suites import ``fakes`` and ``support``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from comms.cli import app
from comms.plan.loader import load_plan
from comms.plan.models import Plan
from tests.support.postgres import PostgresServer, find_bin_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
PLAN_FOLDERS = ("audiences", "schedules", "templates")

Cli = Callable[..., Result]
_CACHE_VARIABLES = ("XDG_CACHE_HOME", "COMMS_CACHE_DIR")
_CACHE_KEY = pytest.StashKey[tuple[Path, dict[str, str | None]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="Rewrite the golden previews under tests/golden/ from the current templates instead of comparing.",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Compiled templates go to a temp folder, never the developer's ~/.cache (from collection on, subprocesses too).

    ``XDG_CACHE_HOME`` points there as well, so tests that drop every ``COMMS_*`` variable still use it.
    """
    root = Path(tempfile.mkdtemp(prefix="comms-test-cache-"))
    config.stash[_CACHE_KEY] = (root, {name: os.environ.get(name) for name in _CACHE_VARIABLES})
    os.environ["XDG_CACHE_HOME"] = str(root)
    os.environ["COMMS_CACHE_DIR"] = str(root / "comms")


def pytest_unconfigure(config: pytest.Config) -> None:
    root, saved = config.stash[_CACHE_KEY]
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root, which holds the default plan."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def default_plan() -> Plan:
    """The default plan, loaded and fully validated (templates included) once per session."""
    return load_plan(REPO_ROOT)


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    """True when the run was started with --update-golden."""
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def plan_copy(tmp_path: Path) -> Path:
    """A private copy of the default plan (audiences/, schedules/, templates/) to break or edit."""
    root = tmp_path / "plan"
    for folder in PLAN_FOLDERS:
        shutil.copytree(REPO_ROOT / folder, root / folder)
    return root


@pytest.fixture
def cli() -> Cli:
    """Run ``comms`` in-process; a wide terminal keeps rich from wrapping file names and reasons."""
    runner = CliRunner()

    def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
        argv: Sequence[str] = [str(arg) for arg in args]
        return runner.invoke(app, argv, env={"COLUMNS": "400", **(env or {})})

    return invoke


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test session (initdb + pg_ctl into a temp dir), stopped at the end."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server installed (.ci/run installs the postgresql package)")
    server = PostgresServer(bin_dir)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> str:
    """A database that ``comms db upgrade``'s migrations brought to the current schema, copied for each test."""
    from comms.store.engine import make_engine
    from comms.store.schema import upgrade

    name = postgres_server.new_database()
    engine = make_engine(postgres_server.url(name), check_schema=False)
    upgrade(engine)
    engine.dispose()
    return name


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, postgres_template: str) -> Iterator[str]:
    """The URL of a PostgreSQL database of this test at the current schema (no rows), dropped afterwards."""
    name = postgres_server.new_database(template=postgres_template)
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database shared by one module's tests: a SQLite file, or a PostgreSQL database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('module-db')}/comms.db"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.new_database(template=request.getfixturevalue("postgres_template"))
    yield server.url(name)
    server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database of a backend-parametrised test: a SQLite file under tmp_path, or a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/comms.db"
    return str(request.getfixturevalue("postgres_url"))
