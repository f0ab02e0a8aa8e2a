"""Where compiled templates are cached: COMMS_CACHE_DIR, else the XDG cache folder, else ~/.cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from comms.settings import Settings


@pytest.fixture(autouse=True)
def _no_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from an empty folder so no .env file takes part."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COMMS_CACHE_DIR", raising=False)


def test_the_cache_lives_under_xdg_cache_home_when_it_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """An absolute XDG_CACHE_HOME holds a comms folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", "/srv/cache")
    assert Settings().cache_dir == Path("/srv/cache/comms")


def test_the_cache_lives_under_the_home_folder_without_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no XDG_CACHE_HOME (or a relative one, which the XDG spec says to ignore) it is ~/.cache/comms."""
    monkeypatch.setenv("HOME", "/home/operator")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert Settings().cache_dir == Path("/home/operator/.cache/comms")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert Settings().cache_dir == Path("/home/operator/.cache/comms")


def test_comms_cache_dir_wins_and_empty_turns_the_cache_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """COMMS_CACHE_DIR overrides the default; set empty, there is no cache at all."""
    monkeypatch.setenv("COMMS_CACHE_DIR", "/var/tmp/comms-templates")
    assert Settings().cache_dir == Path("/var/tmp/comms-templates")
    monkeypatch.setenv("COMMS_CACHE_DIR", "")
    assert Settings().cache_dir is None
