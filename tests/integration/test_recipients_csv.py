"""The one recipients CSV reader (comms.plan.recipients) and the one address check on every path.

validate (``load_plan(check_recipients=True)``), check (``check_recipients_csv``) and the send
(materializing deliveries) all read through ``read_recipients_csv`` and judge with ``address_problem``.
"""

from __future__ import annotations

import tracemalloc
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from comms.errors import PlanError
from comms.plan.fields import Channel
from comms.plan.loader import load_plan
from comms.plan.recipients import (
    CsvRecipient,
    RecipientsCsvError,
    check_recipients_header,
    iter_email_recipients,
    read_recipients_csv,
    scan_recipients_csv,
)
from comms.reports.readiness import check_recipients_csv
from comms.services.scheduling import schedule_cutover
from comms.store.tables import DeliveryRow
from tests.support.engine import T0, make_harness

from .builders import write_plan

BOM = b"\xef\xbb\xbf"


def _csv(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "people.csv"
    path.write_bytes(data)
    return path


def _refusal(path: Path) -> RecipientsCsvError:
    with pytest.raises(RecipientsCsvError) as caught:
        list(read_recipients_csv(path))
    return caught.value


def test_bom_semicolons_and_crlf_are_read(tmp_path: Path) -> None:
    """A BOM, ``;`` between fields, CRLF line ends and a spaced, capitalised header read like a plain CSV."""
    path = _csv(tmp_path, BOM + b" Email ;Name\r\nada@example.com;Lovelace, Ada\r\n\r\ngrace@example.org;Grace\r\n")
    assert list(read_recipients_csv(path)) == [
        CsvRecipient(2, "ada@example.com", "Lovelace, Ada"),
        CsvRecipient(4, "grace@example.org", "Grace"),
    ]


def test_commas_win_when_the_header_has_more_of_them(tmp_path: Path) -> None:
    """The separator is the one the header line uses more; quoted fields may hold the other one."""
    path = _csv(tmp_path, b'name,email,team\n"Hopper; Grace",grace@example.org,core\n')
    assert list(read_recipients_csv(path)) == [CsvRecipient(2, "grace@example.org", "Hopper; Grace")]


def test_rows_are_numbered_by_the_line_they_start_on(tmp_path: Path) -> None:
    """A quoted field over two lines, blank lines and empty-cell rows keep the line numbers of what follows."""
    path = _csv(tmp_path, b'email,name\n"a@example.com","two\nlines"\n\n,\nb@example.com,B\n')
    assert [row.line for row in read_recipients_csv(path)] == [2, 6]


def test_latin_1_is_refused_at_its_first_bad_line(tmp_path: Path) -> None:
    """A file saved as Latin-1 is refused, naming the file and the line of the first byte that is not UTF-8."""
    path = _csv(tmp_path, "email,name\nada@example.com,Ada\nzoe@example.com,Zoë\n".encode("latin-1"))
    refusal = _refusal(path)
    assert refusal.path == path and refusal.line == 3 and "not valid UTF-8 (byte 0xeb)" in refusal.reason
    assert str(refusal).endswith("people.csv:3: " + refusal.reason)


def test_a_bad_byte_is_placed_at_its_line_though_decoded_ahead(tmp_path: Path) -> None:
    """The text layer decodes ahead of the rows; the refusal still names the line of the bad byte, not the row read."""
    refusal = _refusal(_csv(tmp_path, b"email\nada@example.com\nbob@example.com\ncaf\xe9@example.com\n"))
    assert refusal.line == 4


def test_utf_16_is_refused_at_line_one(tmp_path: Path) -> None:
    """A spreadsheet's "Unicode text" export (UTF-16) is not UTF-8 from its first byte."""
    refusal = _refusal(_csv(tmp_path, "email\nada@example.com\n".encode("utf-16")))
    assert refusal.line == 1 and "not valid UTF-8" in refusal.reason


def test_a_binary_file_is_refused_at_its_nul_byte(tmp_path: Path) -> None:
    """A file with NUL bytes is not text: refused at the line holding the first one."""
    refusal = _refusal(_csv(tmp_path, b"email\nada@example.com\nPK\x03\x04\x00\x00\n"))
    assert refusal.line == 3 and "not a text file (NUL byte)" in refusal.reason


def test_a_header_without_rows_is_refused(tmp_path: Path) -> None:
    """A header followed by nothing (or only blank lines) has no recipients, and is refused."""
    refusal = _refusal(_csv(tmp_path, b"email,name\r\n\r\n,\r\n"))
    assert refusal.reason == "CSV has a header but no recipients"


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    """A file with no header at all is refused."""
    assert "the file is empty" in _refusal(_csv(tmp_path, b"")).reason


def test_no_email_column_names_the_columns_found(tmp_path: Path) -> None:
    """A header without ``email`` is refused at line 1, listing the columns it has."""
    refusal = _refusal(_csv(tmp_path, b"Mail;Name\nada@example.com;Ada\n"))
    assert refusal.line == 1 and refusal.reason == "CSV header has no 'email' column (columns found: 'mail', 'name')"


def test_the_header_check_reads_only_up_to_the_first_row(tmp_path: Path) -> None:
    """Every plan load checks the header and a first row; a bad line far down is for the full read to find."""
    rows = b"".join(b"user%d@example.com\n" % n for n in range(5000))
    path = _csv(tmp_path, b"email\n" + rows + b"caf\xe9@example.com\n")
    check_recipients_header(path)
    assert _refusal(path).line == 5002


def test_reading_streams_instead_of_loading_the_file(tmp_path: Path) -> None:
    """Scanning 100,000 rows holds no more than a small buffer in memory at any time."""
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.write("email,name\n")
        handle.writelines(f"user{n}@example{n % 7}.com,User {n}\n" for n in range(100_000))
    assert path.stat().st_size > 3_000_000
    tracemalloc.start()
    try:
        scan = scan_recipients_csv(path, listed=20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert scan.rows == 100_000 and scan.invalid_count == 0
    assert peak < 1_000_000


def _plan_with_csv(tmp_path: Path, data: bytes) -> Path:
    plan = write_plan(tmp_path / "plan")
    (plan / "audiences" / "end-users.csv").write_bytes(data)
    return plan


BAD_CSV = BOM + b"email;name\r\nada@example.com;Ada\r\na..b@x.com;Double Dot\r\n"


def test_validate_accepts_a_bom_and_refuses_a_double_dot_at_its_line(tmp_path: Path) -> None:
    """``comms validate``'s load reads past the BOM and names the invalid address, file and line."""
    plan = _plan_with_csv(tmp_path, BAD_CSV)
    with pytest.raises(PlanError) as caught:
        load_plan(plan, check_templates=False, check_recipients=True)
    (problem,) = caught.value.problems
    assert problem.file.endswith("end-users.csv") and problem.line == 3
    assert problem.message == "invalid email address 'a..b@x.com': An email address cannot have two periods in a row."


def test_validate_lists_twenty_invalid_addresses_and_counts_the_rest(tmp_path: Path) -> None:
    """Past 20 invalid addresses validate stops listing them one by one and says how many more there are."""
    rows = "".join(f"user{n}..x@example.com\n" for n in range(25))
    plan = _plan_with_csv(tmp_path, f"email\nada@example.com\n{rows}".encode())
    with pytest.raises(PlanError) as caught:
        load_plan(plan, check_templates=False, check_recipients=True)
    problems = caught.value.problems
    assert [p.line for p in problems[:20]] == list(range(3, 23))
    assert problems[20].message == "and 5 more invalid email addresses (25 of 26 rows)" and len(problems) == 21


def test_a_plain_load_checks_the_header_but_not_every_address(tmp_path: Path) -> None:
    """Loading for schedule or send reads only the header and a first row; bad rows become dead deliveries."""
    plan = load_plan(_plan_with_csv(tmp_path, BAD_CSV), check_templates=False)
    assert "end-users" in plan.audiences


def test_a_plain_load_refuses_a_csv_without_rows(tmp_path: Path) -> None:
    """Even the cheap check refuses a CSV with a header and no recipients."""
    with pytest.raises(PlanError, match="CSV has a header but no recipients"):
        load_plan(_plan_with_csv(tmp_path, BOM + b"email,name\r\n"), check_templates=False)


def test_check_reads_the_same_csv_the_same_way(tmp_path: Path) -> None:
    """``comms check`` reads past the BOM too, and fails the same double-dot address at the same line."""
    path = _csv(tmp_path, BAD_CSV)
    row = check_recipients_csv(path, name="recipients: x")
    assert row.status == "FAIL" and row.detail.endswith("1 invalid of 2: line 3: 'a..b@x.com'")
    good = check_recipients_csv(_csv(tmp_path, BOM + b"email;name\r\nada@example.com;Ada\r\n"), name="x")
    assert good.status == "PASS" and good.detail.endswith("1 recipients")


def test_check_fails_an_unreadable_csv_naming_the_line(tmp_path: Path) -> None:
    """A Latin-1 CSV is a FAIL row naming the file and line, not a crash."""
    row = check_recipients_csv(_csv(tmp_path, b"email\nzo\xeb@example.com\n"), name="x")
    assert row.status == "FAIL" and "people.csv:2: not valid UTF-8" in row.detail


def test_the_send_path_marks_the_double_dot_row_with_its_reason(tmp_path: Path) -> None:
    """The recipients a send streams carry the same verdict, located at the CSV's line."""
    plan = load_plan(_plan_with_csv(tmp_path, BAD_CSV), check_templates=False)
    rows = list(iter_email_recipients(plan.audiences["end-users"]))
    assert [(r.address, r.problem is None, r.source.rsplit(":", 1)[1]) for r in rows] == [
        ("ada@example.com", True, "2"),
        ("a..b@x.com", False, "3"),
    ]


def test_a_send_delivers_to_the_good_rows_and_records_the_bad_one_dead(tmp_path: Path, plan_copy: Path) -> None:
    """Scheduled and sent, a BOM'd CSV's good address is delivered and the double-dot one is dead, not sent."""
    csv = plan_copy / "audiences" / "end-users.csv"
    csv.write_bytes(BOM + csv.read_bytes().replace(b"\n", b"\r\n") + b"a..b@x.com,Double Dot\r\n")
    h = make_harness(tmp_path, plan_root=plan_copy)
    schedule_cutover(h.services.engine, h.plan, start=T0, now=h.clock())
    h.at(timedelta(hours=-48))
    h.run()
    with Session(h.services.engine) as session:
        rows = session.exec(
            select(DeliveryRow).where(DeliveryRow.channel == Channel.EMAIL.value, DeliveryRow.audience == "end-users")
        ).all()
    dead = [r for r in rows if r.state == "dead"]
    assert [r.recipient for r in dead] == ["a..b@x.com"]
    assert "two periods in a row" in (dead[0].last_error or "") and "end-users.csv:6" in (dead[0].last_error or "")
    sent = {r.lower() for r in h.channels[Channel.EMAIL].recipients()}
    assert "a..b@x.com" not in sent and "ada.lovelace@example.com" in sent
