from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from beta.csv_import import (
    ImportHasErrors,
    RejectedLine,
    apply_import,
    import_stores,
    parse_store_csv,
    preview_import,
)
from beta.models import Store
from beta.store import list_stores, store_fields

HEADER = "external_id,name,region,timezone,tags,update_window_start,update_window_end\n"

GOOD = HEADER + (
    "S001,Shibuya,kanto,Asia/Tokyo,fc:sakura;hw:gen3,02:00,05:00\n"
    "S002,Umeda,kansai,Asia/Tokyo,,,\n"
    'S003,"Santa Monica, CA",us-west,America/Los_Angeles,hw:gen2,22:00,02:00\n'
)

BAD = HEADER + (
    "S001,Shibuya,kanto,Asia/Tokyo,,02:00,05:00\n"  # line 2: fine
    "S002,Umeda,kansai,Osaka/Japan,,,\n"  # line 3: bad time zone
    "S003,,kanto,,,,\n"  # line 4: empty name
    "S004,Shinjuku,kanto,,,25:00,\n"  # line 5: bad window
    "S005,Ikebukuro,kanto,,,\n"  # line 6: too few fields
    "S006,Ueno,kanto,,,,\n"  # line 7: duplicate id ...
    "S006,Ueno 2,kanto,,,,\n"  # line 8: ... twice
    "bad id!,Akiba,kanto,,,,\n"  # line 9: bad id
    "S009,Ginza,kanto,,,03:00,03:00\n"  # line 10: empty window
)


def _store_rows(session: Session) -> list[dict[str, Any]]:
    return [store_fields(s) for s in session.exec(select(Store).order_by(Store.external_id))]


def test_a_good_file_is_imported(session: Session, now: datetime) -> None:
    report = preview_import(session=session, data=GOOD)
    assert report.ok
    assert report.would_create == ("S001", "S002", "S003")
    result = apply_import(session=session, report=report, actor="ops", now=now)
    assert result.created == ("S001", "S002", "S003")
    stores = {s["external_id"]: s for s in _store_rows(session)}
    assert stores["S001"]["tags"] == ["fc:sakura", "hw:gen3"]
    assert stores["S002"]["timezone"] == "Asia/Tokyo"  # default
    assert (stores["S002"]["update_window_start"], stores["S002"]["update_window_end"]) == (
        "02:00",
        "05:00",
    )
    assert stores["S003"]["name"] == "Santa Monica, CA"
    assert stores["S003"]["update_window_end"] == "02:00"
    assert [c.before for c in result.changes] == [None, None, None]


def test_reimport_is_idempotent(session: Session, now: datetime) -> None:
    import_stores(session=session, data=GOOD, actor="ops", now=now)
    before = _store_rows(session)
    stamps = [s.updated_at for s in list_stores(session=session)]
    report, result = import_stores(
        session=session, data=GOOD, actor="ops", now=now + timedelta(days=1)
    )
    assert report.unchanged == ("S001", "S002", "S003")
    assert (report.would_create, report.would_update) == ((), ())
    assert (result.created, result.updated, result.changes) == ((), (), ())
    assert _store_rows(session) == before
    assert [s.updated_at for s in list_stores(session=session)] == stamps


def test_upsert_updates_by_external_id_and_keeps_what_is_not_given(
    session: Session, now: datetime
) -> None:
    import_stores(session=session, data=GOOD, actor="ops", now=now)
    update = "external_id,name,region\nS001,Shibuya Center,kanto\nS004,Nagoya,chubu\n"
    report, result = import_stores(session=session, data=update, actor="ops", now=now)
    assert (report.would_update, report.would_create) == (("S001",), ("S004",))
    assert (result.updated, result.created) == (("S001",), ("S004",))
    s001 = next(s for s in _store_rows(session) if s["external_id"] == "S001")
    assert s001["name"] == "Shibuya Center"
    assert s001["tags"] == ["fc:sakura", "hw:gen3"]  # no tags column: kept
    assert s001["timezone"] == "Asia/Tokyo"
    change = result.changes[0]
    assert change.before is not None and change.before["name"] == "Shibuya"


def test_bad_lines_are_reported_line_by_line_and_nothing_changes(
    session: Session, now: datetime
) -> None:
    report = preview_import(session=session, data=BAD)
    assert not report.ok
    assert [r.line_no for r in report.rejected] == [3, 4, 5, 6, 7, 8, 9, 10]
    reasons = {r.line_no: r.reason for r in report.rejected}
    assert "timezone" in reasons[3] and "Osaka/Japan" in reasons[3]
    assert reasons[4].startswith("name:")
    assert "update_window_start" in reasons[5]
    assert "has 6 fields, the header has 7" in reasons[6]
    assert "also on line 8" in reasons[7]
    assert "also on line 7" in reasons[8]
    assert reasons[9].startswith("external_id:")
    assert "empty" in reasons[10]
    assert report.rejected[0] == RejectedLine(3, "S002", reasons[3])
    assert [row.external_id for row in report.valid_rows] == ["S001"]

    with pytest.raises(ImportHasErrors) as error:
        apply_import(session=session, report=report, actor="ops", now=now)
    assert error.value.report is report
    assert _store_rows(session) == []


def test_accepting_the_valid_lines_applies_only_them(session: Session, now: datetime) -> None:
    report, result = import_stores(
        session=session, data=BAD, actor="ops", now=now, accept_valid=True
    )
    assert result.created == ("S001",)
    assert len(result.skipped_lines) == len(report.rejected) == 8
    assert [s["external_id"] for s in _store_rows(session)] == ["S001"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("", "empty"),
        ("\n\n", "empty"),
        ("external_id,name,colour\nS1,A,red\n", "unknown columns: colour"),
        ("external_id,region\nS1,kanto\n", "missing required columns: name"),
        ("name,region\nA,kanto\n", "missing required columns: external_id"),
        ("external_id,name,name\nS1,A,B\n", "duplicate columns: name"),
        ("external_id;name;region\nS1;A;kanto\n", "separated by semicolons"),
        ("external_id,name\n", "no store lines"),
        (b"external_id,name\nS1,\xff\xfe\n", "not UTF-8"),
        ('external_id,name\nS1,"unterminated\n', "unreadable CSV"),
        ("external_id,name\nS1,A\nS2,B\x00C\n", "line 3 holds a NUL character"),
        (b"external_id,name\nS1,A\x00\n", "line 2 holds a NUL character"),
    ],
)
def test_file_level_errors_change_nothing(
    session: Session, now: datetime, data: str | bytes, message: str
) -> None:
    report = preview_import(session=session, data=data)
    assert report.file_errors
    assert message in " ".join(report.file_errors)
    assert report.valid_rows == ()
    for accept_valid in (False, True):
        with pytest.raises(ImportHasErrors):
            apply_import(
                session=session, report=report, actor="ops", now=now, accept_valid=accept_valid
            )
    assert _store_rows(session) == []


def test_header_is_case_insensitive_and_bom_and_blank_lines_are_fine() -> None:
    data = "\ufeffExternal_ID, Name ,Region\r\n\r\nS1,A,kanto\r\n\r\nS2,B,osaka\r\n".encode()
    report = parse_store_csv(data)
    assert report.ok
    assert [(r.line_no, r.external_id) for r in report.valid_rows] == [(3, "S1"), (5, "S2")]


def test_line_numbers_follow_multiline_quoted_fields() -> None:
    data = 'external_id,name\nS1,"two\nlines"\nS2,\n'
    report = parse_store_csv(data)
    assert [r.line_no for r in report.rejected] == [4]


def test_window_given_alone_is_checked_against_the_stored_other_end() -> None:
    existing = {
        "S1": {
            "external_id": "S1",
            "name": "A",
            "update_window_start": "01:00",
            "update_window_end": "03:00",
        }
    }
    data = "external_id,name,update_window_start\nS1,A,03:00\nS2,B,05:00\n"
    report = parse_store_csv(data, existing=existing)
    # S1: 03:00–03:00 is empty; S2 (new): 05:00 against the default end 05:00 is empty too
    assert [r.external_id for r in report.rejected] == ["S1", "S2"]


def test_too_many_rows_is_a_file_error() -> None:
    data = "external_id,name\n" + "".join(f"S{i},n\n" for i in range(11))
    report = parse_store_csv(data, max_rows=10)
    assert report.file_errors and "more than 10" in report.file_errors[0]


def test_report_serialises() -> None:
    report = parse_store_csv(BAD)
    body = report.to_dict()
    assert body["ok"] is False
    assert body["rejected"][0] == {
        "line_no": 3,
        "external_id": "S002",
        "reason": report.rejected[0].reason,
    }
