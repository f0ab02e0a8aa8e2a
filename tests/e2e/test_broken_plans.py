"""A catalogue of broken plans: `comms validate` exits 2 and names the file, the line where known, and the reason.

Each test copies the default plan into tmp_path, breaks one thing, and runs the CLI in-process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from typer.testing import Result

Cli = Callable[..., Result]


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} must occur exactly once in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def _line_of(path: Path, needle: str) -> int:
    lines = [n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if needle in line]
    assert len(lines) == 1, f"{needle!r} must be on exactly one line of {path}"
    return lines[0]


def _validate(cli: Cli, plan: Path) -> tuple[Result, str]:
    result = cli("validate", "--plan", plan)
    return result, " ".join(result.output.split())


def _assert_refused(result: Result, output: str, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in expected:
        assert fragment in output, f"{fragment!r} not in:\n{result.output}"


def test_yaml_syntax_error_names_file_and_line(cli: Cli, plan_copy: Path) -> None:
    """A YAML syntax error names the audience file, the line and the parser's reason."""
    _edit(plan_copy / "audiences/support.yaml", "timezone: Europe/Dublin", "timezone: Europe/Dublin: Cork")
    result, output = _validate(cli, plan_copy)
    _assert_refused(result, output, "audiences/support.yaml:5: YAML syntax error: mapping values are not allowed here")


def test_yaml_syntax_error_in_schedule_names_line(cli: Cli, plan_copy: Path) -> None:
    """A YAML syntax error in the schedule names schedules/cutover.yaml and a line."""
    schedule = plan_copy / "schedules/cutover.yaml"
    line = _line_of(schedule, "  reminder:")
    _edit(schedule, "  reminder:\n", "  reminder\n")
    result, output = _validate(cli, plan_copy)
    _assert_refused(result, output, "schedules/cutover.yaml:", "YAML syntax error: could not find expected ':'")
    assert f"schedules/cutover.yaml:{line + 1}:" in output


def test_unknown_key_in_audience_names_key_and_line(cli: Cli, plan_copy: Path) -> None:
    """A typo'd key in an audience is refused with its name and line."""
    _edit(plan_copy / "audiences/support.yaml", "timezone: Europe/Dublin\n", "timezone: Europe/Dublin\ncolour: blue\n")
    result, output = _validate(cli, plan_copy)
    _assert_refused(result, output, "audiences/support.yaml:6: unknown key 'colour'")


def test_unknown_time_zone_is_named(cli: Cli, plan_copy: Path) -> None:
    """An unknown IANA zone is refused with the zone and the line of 'timezone'."""
    _edit(plan_copy / "audiences/support.yaml", "Europe/Dublin", "Mars/Olympus")
    result, output = _validate(cli, plan_copy)
    _assert_refused(result, output, "audiences/support.yaml:5: timezone: unknown time zone 'Mars/Olympus'")


def test_invalid_email_address_is_named(cli: Cli, plan_copy: Path) -> None:
    """An address without @ is refused at its line, saying it is not a valid email address."""
    _edit(plan_copy / "audiences/support.yaml", "support-leads@example.com", "support-leads.example.com")
    result, output = _validate(cli, plan_copy)
    _assert_refused(result, output, "audiences/support.yaml:9:", "not a valid email address")


def test_missing_recipients_csv_is_named(cli: Cli, plan_copy: Path) -> None:
    """A recipients_csv that does not exist is refused, naming the audience file, its line and the CSV."""
    (plan_copy / "audiences/end-users.csv").unlink()
    result, output = _validate(cli, plan_copy)
    _assert_refused(result, output, "audiences/end-users.yaml:9: recipients CSV not found:", "end-users.csv")


def test_csv_without_email_column_is_named(cli: Cli, plan_copy: Path) -> None:
    """A recipients CSV whose header has no 'email' column is refused at line 1 of the CSV."""
    (plan_copy / "audiences/end-users.csv").write_text("address,name\nada@example.com,Ada\n", encoding="utf-8")
    result, output = _validate(cli, plan_copy)
    _assert_refused(result, output, "audiences/end-users.csv:1: CSV header has no 'email' column")


def test_csv_address_with_two_dots_is_named_at_its_line(cli: Cli, plan_copy: Path) -> None:
    """Validate checks every CSV address: ``a..b@x.com`` is refused at its line of the CSV, with the reason."""
    csv = plan_copy / "audiences/end-users.csv"
    lines = csv.read_text(encoding="utf-8").splitlines()
    csv.write_text("\n".join([*lines, "a..b@x.com,Double Dot"]) + "\n", encoding="utf-8")
    result, output = _validate(cli, plan_copy)
    _assert_refused(
        result,
        output,
        f"audiences/end-users.csv:{len(lines) + 1}: invalid email address 'a..b@x.com': "
        "An email address cannot have two periods in a row.",
    )


def test_csv_saved_as_latin_1_is_named_at_its_line(cli: Cli, plan_copy: Path) -> None:
    """A recipients CSV that is not UTF-8 is refused, naming the CSV and the line of the first bad byte."""
    (plan_copy / "audiences/end-users.csv").write_bytes("email,name\nzoe@example.com,Zoë\n".encode("latin-1"))
    result, output = _validate(cli, plan_copy)
    _assert_refused(result, output, "audiences/end-users.csv:2: not valid UTF-8 (byte 0xeb)")


def test_csv_with_a_header_and_no_rows_is_refused(cli: Cli, plan_copy: Path) -> None:
    """A recipients CSV with only its header has no recipients: refused, naming the CSV."""
    (plan_copy / "audiences/end-users.csv").write_text("email,name\n", encoding="utf-8")
    result, output = _validate(cli, plan_copy)
    _assert_refused(result, output, "audiences/end-users.csv: CSV has a header but no recipients")


def test_message_naming_unknown_audience(cli: Cli, plan_copy: Path) -> None:
    """A message naming an audience that does not exist is refused with the message, the name and the line."""
    schedule = plan_copy / "schedules/cutover.yaml"
    _edit(
        schedule,
        '    title: "Reminder: maintenance tomorrow"\n    at: T-24h\n    audiences: [end-users, executives, support, engineering, customer-success]',
        '    title: "Reminder: maintenance tomorrow"\n    at: T-24h\n    audiences: [end-users, investors]',
    )
    line = _line_of(schedule, "audiences: [end-users, investors]")
    result, output = _validate(cli, plan_copy)
    _assert_refused(
        result, output, f"schedules/cutover.yaml:{line}: message 'reminder' names unknown audience 'investors'"
    )


def test_message_on_channel_none_of_its_audiences_has(cli: Cli, plan_copy: Path) -> None:
    """A message sent on Slack to end users only (who have no Slack) is refused, naming the channel."""
    schedule = plan_copy / "schedules/cutover.yaml"
    _edit(
        schedule,
        "    event: adhoc\n    audiences: [end-users, executives, support, engineering, customer-success]",
        "    event: adhoc\n    audiences: [end-users]",
    )
    line = _line_of(schedule, "audiences: [end-users]") + 1
    result, output = _validate(cli, plan_copy)
    _assert_refused(
        result,
        output,
        f"schedules/cutover.yaml:{line}: message 'announcement' goes to channel 'slack' but none of its audiences has it",
    )


def test_unknown_channel_name(cli: Cli, plan_copy: Path) -> None:
    """An unknown channel name is refused with the allowed names and what was given."""
    schedule = plan_copy / "schedules/cutover.yaml"
    _edit(
        schedule,
        "    at: T-24h\n    audiences: [end-users, executives, support, engineering, customer-success]\n    channels: [email, slack]",
        "    at: T-24h\n    audiences: [end-users, executives, support, engineering, customer-success]\n    channels: [email, pigeon]",
    )
    line = _line_of(schedule, "channels: [email, pigeon]")
    result, output = _validate(cli, plan_copy)
    _assert_refused(result, output, f"schedules/cutover.yaml:{line}: messages.reminder.channels.1:", "(got 'pigeon')")


def test_missing_template_file(cli: Cli, plan_copy: Path) -> None:
    """A template file a sent combination needs is reported missing by its path."""
    (plan_copy / "templates/reminder/email.subject.j2").unlink()
    result, output = _validate(cli, plan_copy)
    _assert_refused(result, output, "templates/reminder/email.subject.j2: template missing")


def test_template_syntax_error_names_file_and_line(cli: Cli, plan_copy: Path) -> None:
    """A Jinja syntax error is reported with the template file and line."""
    template = plan_copy / "templates/reminder/slack.j2"
    lines = template.read_text(encoding="utf-8").splitlines()
    lines[2] = "{% if %}"
    template.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result, output = _validate(cli, plan_copy)
    _assert_refused(result, output, "templates/reminder/slack.j2:3: template syntax error")


def test_template_with_undefined_variable_names_file(cli: Cli, plan_copy: Path) -> None:
    """A template using a variable its trigger never provides is reported with the file and the variable."""
    template = plan_copy / "templates/reminder/email.text.j2"
    _edit(template, "Reminder: the {{ cutover.title }}", "Reminder ({{ event.reason }}): the {{ cutover.title }}")
    line = _line_of(template, "event.reason")
    result, output = _validate(cli, plan_copy)
    _assert_refused(
        result,
        output,
        f"templates/reminder/email.text.j2:{line}: template uses a variable that is never provided",
        "'event' is undefined",
    )


def test_undefined_variable_in_audience_override_names_the_override(cli: Cli, plan_copy: Path) -> None:
    """An undefined variable in an audience override names the override file, not the default."""
    template = plan_copy / "templates/reminder/executives/email.html.j2"
    _edit(template, "<ul>", "<ul>{{ incident.summary }}")
    result, output = _validate(cli, plan_copy)
    _assert_refused(result, output, "templates/reminder/executives/email.html.j2:", "'incident' is undefined")


def test_every_problem_is_reported_at_once(cli: Cli, plan_copy: Path) -> None:
    """Two unrelated problems in two files are both reported in one run."""
    _edit(plan_copy / "audiences/executives.yaml", "Europe/London", "Europe/Londres")
    (plan_copy / "audiences/end-users.csv").unlink()
    result, output = _validate(cli, plan_copy)
    _assert_refused(result, output, "audiences/executives.yaml:", "'Europe/Londres'", "recipients CSV not found")


def test_invalid_audience_is_reported_once(cli: Cli, plan_copy: Path) -> None:
    """An audience file with one error yields one problem, not a cascade of 'unknown audience' ones."""
    _edit(plan_copy / "audiences/support.yaml", "Europe/Dublin", "Mars/Olympus")
    result, output = _validate(cli, plan_copy)
    _assert_refused(result, output, "unknown time zone 'Mars/Olympus'")
    assert "names unknown audience 'support'" not in output
