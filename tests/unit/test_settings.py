"""Settings refuse values comms cannot use, with one line naming the environment variable."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from comms.errors import InputError, SettingsError
from comms.settings import Settings, settings_error


@pytest.fixture(autouse=True)
def _no_comms_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the variables a test sets reach Settings (no .env either)."""
    for name in list(os.environ):
        if name.upper().startswith("COMMS_"):
            monkeypatch.delenv(name)
    monkeypatch.setitem(Settings.model_config, "env_file", None)


def _refusal(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> SettingsError:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    error = settings_error(caught.value)
    assert error is not None
    return error


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("COMMS_MAX_ATTEMPTS", "many", "Input should be a valid integer"),
        ("COMMS_MAX_ATTEMPTS", "0", "Input should be greater than or equal to 1"),
        ("COMMS_RETRY_BASE_SECONDS", "-5", "Input should be greater than or equal to 0"),
        ("COMMS_RETRY_MAX_SECONDS", "-1", "Input should be greater than or equal to 0"),
        ("COMMS_SENDGRID_HOST", "not a url", "must be an http(s) URL with a host"),
        ("COMMS_SLACK_BASE_URL", "ftp://slack.example.com/api/", "must be an http(s) URL with a host"),
        ("COMMS_STATUSPAGE_BASE_URL", "https://", "must be an http(s) URL with a host"),
    ],
)
def test_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str, reason: str) -> None:
    """A bad value becomes one line: the variable, the value and what is wrong (an InputError, exit 2)."""
    error = _refusal(monkeypatch, name, value)
    assert str(error).startswith(f"invalid setting {name}={value!r}: {reason}")
    assert "\n" not in str(error)
    assert isinstance(error, InputError) and error.exit_code == 2


def test_every_bad_variable_is_named_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two bad variables are both named, in one line."""
    monkeypatch.setenv("COMMS_SENDGRID_HOST", "sendgrid")
    error = _refusal(monkeypatch, "COMMS_MAX_ATTEMPTS", "many")
    assert "COMMS_MAX_ATTEMPTS='many'" in str(error) and "COMMS_SENDGRID_HOST='sendgrid'" in str(error)


def test_a_secret_is_never_echoed() -> None:
    """A secret that fails validation is named without its value."""
    with pytest.raises(ValidationError) as caught:
        Settings(slack_token=424242)  # type: ignore[arg-type]
    error = settings_error(caught.value)
    assert error is not None
    assert "COMMS_SLACK_TOKEN: " in str(error) and "424242" not in str(error)


def test_defaults_and_loopback_hosts_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default hosts and an http://127.0.0.1 fake are valid; values are kept as given."""
    assert Settings().slack_base_url == "https://slack.com/api/"
    monkeypatch.setenv("COMMS_SENDGRID_HOST", "http://127.0.0.1:8025")
    assert Settings().sendgrid_host == "http://127.0.0.1:8025"


def test_other_validation_errors_are_not_settings_errors() -> None:
    """settings_error leaves a ValidationError of another model (and any other error) alone."""
    from comms.plan.models import StatuspageSettings

    with pytest.raises(ValidationError) as caught:
        StatuspageSettings(no_such_field=1)  # type: ignore[call-arg]
    assert settings_error(caught.value) is None
    assert settings_error(ValueError("x")) is None
