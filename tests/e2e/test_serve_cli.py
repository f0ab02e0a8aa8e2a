"""`comms serve` refuses to expose a console nobody can log in to safely."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cli


def test_serve_without_a_token_refuses_a_public_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli
) -> None:
    """Without COMMS_CONSOLE_TOKEN, --host 0.0.0.0 exits 2 naming the setting, before binding anything."""
    monkeypatch.delenv("COMMS_CONSOLE_TOKEN", raising=False)
    monkeypatch.setenv("COMMS_DATABASE_URL", f"sqlite:///{tmp_path}/comms.db")
    result = cli("serve", "--host", "0.0.0.0", "--port", "0")
    assert result.exit_code == 2
    assert "COMMS_CONSOLE_TOKEN" in result.output
    assert not (tmp_path / "comms.db").exists()
