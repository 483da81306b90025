"""Import stores from CSV: validate every line, report every rejection, then upsert.

``parse_store_csv`` is pure (text in, :class:`ImportReport` out); ``preview_import`` adds the
stores already in the database so the report can say what would be created or updated;
``apply_import`` upserts by external id. A file-level error (wrong columns, not UTF-8, a NUL
character) changes nothing; rejected lines change nothing unless the user accepts the valid lines.
Re-importing the same file is a no-op (every line is ``unchanged``).

Columns (header row required, any order, case-insensitive)::

    external_id,name,region,timezone,tags,update_window_start,update_window_end

``external_id`` and ``name`` are required. ``tags`` are separated by ``;``. An empty
``timezone`` or window cell means "not given": a new store gets the default (Asia/Tokyo,
02:00–05:00) and an existing store keeps its value, as for a column left out of the file.
An empty ``region`` or ``tags`` cell clears it.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlmodel import Session, select

from beta import validation as v
from beta.errors import BetaError, InvalidInput
from beta.models import Store
from beta.store import StoreChange, create_store, store_fields, update_store

__all__ = [
    "COLUMNS",
    "REQUIRED_COLUMNS",
    "ImportHasErrors",
    "ImportReport",
    "ImportResult",
    "ImportRow",
    "RejectedLine",
    "apply_import",
    "import_stores",
    "parse_store_csv",
    "preview_import",
]

COLUMNS = (
    "external_id",
    "name",
    "region",
    "timezone",
    "tags",
    "update_window_start",
    "update_window_end",
)
REQUIRED_COLUMNS = ("external_id", "name")
MAX_ROWS = 50_000
_EDITABLE = ("name", "region", "timezone", "tags", "update_window_start", "update_window_end")


class RejectedLine(NamedTuple):
    line_no: int
    external_id: str
    reason: str


@dataclass(frozen=True)
class ImportRow:
    """A valid line: the fields it sets (columns left out or empty are not here)."""

    line_no: int
    external_id: str
    values: Mapping[str, Any]


@dataclass(frozen=True)
class ImportReport:
    columns: tuple[str, ...]
    file_errors: tuple[str, ...]
    valid_rows: tuple[ImportRow, ...]
    rejected: tuple[RejectedLine, ...]
    would_create: tuple[str, ...]
    would_update: tuple[str, ...]
    unchanged: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when every line is valid and the file itself is fine."""
        return not self.file_errors and not self.rejected

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "columns": list(self.columns),
            "file_errors": list(self.file_errors),
            "valid_count": len(self.valid_rows),
            "rejected": [r._asdict() for r in self.rejected],
            "would_create": list(self.would_create),
            "would_update": list(self.would_update),
            "unchanged": list(self.unchanged),
        }


class ImportHasErrors(InvalidInput):
    """Raised by :func:`apply_import` when it refuses to change anything."""

    def __init__(self, message: str, *, report: ImportReport) -> None:
        super().__init__(message, field="file")
        self.report = report


def _file_error(message: str, columns: tuple[str, ...] = ()) -> ImportReport:
    return ImportReport(columns, (message,), (), (), (), (), ())


def _decode(data: str | bytes) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8-sig")
    return data.removeprefix("\ufeff")


def _check_header(header: list[str]) -> tuple[tuple[str, ...], list[str]]:
    columns = tuple(name.strip().lower() for name in header)
    errors: list[str] = []
    if any(not name for name in columns):
        errors.append("the header has an empty column name")
    duplicates = sorted(name for name, n in Counter(columns).items() if n > 1 and name)
    if duplicates:
        errors.append(f"duplicate columns: {', '.join(duplicates)}")
    unknown = [name for name in columns if name and name not in COLUMNS]
    if unknown:
        hint = ""
        if len(columns) == 1 and any(sep in columns[0] for sep in ";\t"):
            hint = " (is the file separated by semicolons or tabs? use commas)"
        errors.append(
            f"unknown columns: {', '.join(unknown)}{hint}; expected: {', '.join(COLUMNS)}"
        )
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        errors.append(f"missing required columns: {', '.join(missing)}")
    return columns, errors


def _row_values(
    cells: dict[str, str], existing: Mapping[str, Any] | None
) -> tuple[dict[str, Any], list[str]]:
    """Validate one line's cells; returns the fields it sets and every problem found."""
    values: dict[str, Any] = {}
    problems: list[str] = []

    def attempt(key: str, check: Any) -> None:
        try:
            values[key] = check()
        except InvalidInput as error:
            problems.append(f"{key}: {error.message}")

    attempt("name", lambda: v.check_name(cells.get("name", "")))
    if "region" in cells:
        attempt("region", lambda: v.check_region(cells["region"]))
    if "tags" in cells:
        attempt("tags", lambda: v.check_tags(cells["tags"].split(";")))
    if cells.get("timezone", "").strip():
        attempt("timezone", lambda: v.check_timezone(cells["timezone"]))
    given = {
        key: cells[key].strip()
        for key in ("update_window_start", "update_window_end")
        if cells.get(key, "").strip()
    }
    if given:
        base = existing or {}
        try:
            start, end = v.check_window(
                given.get(
                    "update_window_start",
                    base.get("update_window_start", v.DEFAULT_WINDOW_START),
                ),
                given.get("update_window_end", base.get("update_window_end", v.DEFAULT_WINDOW_END)),
            )
        except InvalidInput as error:
            problems.append(f"{error.field}: {error.message}")
        else:
            values.update(
                {
                    key: value
                    for key, value in (("update_window_start", start), ("update_window_end", end))
                    if key in given
                }
            )
    return values, problems


def parse_store_csv(
    data: str | bytes,
    *,
    existing: Mapping[str, Mapping[str, Any]] | None = None,
    max_rows: int = MAX_ROWS,
) -> ImportReport:
    """Validate a store CSV line by line; changes nothing.

    ``existing`` maps the external ids already stored to their fields (as
    :func:`beta.store.store_fields` gives them), to sort valid lines into create / update /
    unchanged. Line numbers are the file's physical lines (the header is line 1).
    """
    existing = existing or {}
    try:
        text = _decode(data)
    except UnicodeDecodeError:
        return _file_error("the file is not UTF-8 text (save it as 'CSV UTF-8')")
    if "\x00" in text:  # no text column can hold it (PostgreSQL refuses it outright)
        line = text.count("\n", 0, text.index("\x00")) + 1
        return _file_error(
            f"line {line} holds a NUL character, which no store field may contain (is it CSV text?)"
        )
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    lines: list[tuple[int, list[str]]] = []
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            return _file_error("the file is empty: the first line must be the header")
        columns, header_errors = _check_header(header)
        if header_errors:
            return ImportReport(columns, tuple(header_errors), (), (), (), (), ())
        while True:
            start_line = reader.line_num + 1
            cells = next(reader, None)
            if cells is None:
                break
            if not any(cell.strip() for cell in cells):
                continue
            lines.append((start_line, cells))
            if len(lines) > max_rows:
                return _file_error(f"the file has more than {max_rows} store lines", columns)
    except csv.Error as error:
        return _file_error(f"line {reader.line_num}: unreadable CSV ({error})")
    if not lines:
        return _file_error("the file has a header but no store lines", columns)

    ids: list[str] = []
    for _line_no, cells in lines:
        index = columns.index("external_id")
        ids.append(cells[index].strip() if index < len(cells) else "")
    seen_on: dict[str, list[int]] = {}
    for (line_no, _cells), external_id in zip(lines, ids, strict=True):
        if external_id:
            seen_on.setdefault(external_id, []).append(line_no)

    valid: list[ImportRow] = []
    rejected: list[RejectedLine] = []
    create: list[str] = []
    update: list[str] = []
    unchanged: list[str] = []
    for (line_no, raw), external_id in zip(lines, ids, strict=True):
        problems: list[str] = []
        current = existing.get(external_id)
        values: dict[str, Any] = {}
        if len(raw) != len(columns):
            problems.append(f"has {len(raw)} fields, the header has {len(columns)}")
        else:
            try:
                v.check_external_id(external_id)
            except InvalidInput as error:
                problems.append(f"external_id: {error.message}")
            others = [n for n in seen_on.get(external_id, []) if n != line_no]
            if others:
                problems.append(
                    f"external_id: {external_id!r} is also on line"
                    f"{'s' if len(others) > 1 else ''} {', '.join(map(str, others))}"
                )
            by_column = dict(zip(columns, raw, strict=True))
            values, field_problems = _row_values(by_column, current)
            problems.extend(field_problems)
        if problems:
            rejected.append(RejectedLine(line_no, external_id, "; ".join(problems)))
            continue
        valid.append(ImportRow(line_no, external_id, values))
        if current is None:
            create.append(external_id)
        elif any(current.get(key) != value for key, value in values.items()):
            update.append(external_id)
        else:
            unchanged.append(external_id)
    return ImportReport(
        columns=columns,
        file_errors=(),
        valid_rows=tuple(valid),
        rejected=tuple(rejected),
        would_create=tuple(create),
        would_update=tuple(update),
        unchanged=tuple(unchanged),
    )


def preview_import(*, session: Session, data: str | bytes) -> ImportReport:
    """:func:`parse_store_csv` against the stores in the database; changes nothing."""
    existing = {s.external_id: store_fields(s) for s in session.exec(select(Store))}
    return parse_store_csv(data, existing=existing)


@dataclass(frozen=True)
class ImportResult:
    created: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]
    skipped_lines: tuple[RejectedLine, ...]  # rejected lines left out by accept_valid
    changes: tuple[StoreChange, ...]  # one per created or updated store, for the audit log


def apply_import(
    *,
    session: Session,
    report: ImportReport,
    actor: str,
    now: datetime,
    accept_valid: bool = False,
) -> ImportResult:
    """Upsert the report's valid lines by external id. Does not commit.

    Refuses (:class:`ImportHasErrors`, nothing changed) when the file has a file-level
    error, or when lines were rejected and ``accept_valid`` is false. Whether a store is
    created or updated is decided now, against the database, so a stale report is safe.
    """
    v.check_actor(actor)
    if report.file_errors:
        raise ImportHasErrors("; ".join(report.file_errors), report=report)
    if report.rejected and not accept_valid:
        raise ImportHasErrors(
            f"{len(report.rejected)} line(s) were rejected; fix them or accept the "
            f"{len(report.valid_rows)} valid line(s)",
            report=report,
        )
    stores = {s.external_id: s for s in session.exec(select(Store))}
    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    changes: list[StoreChange] = []
    for row in report.valid_rows:
        store = stores.get(row.external_id)
        try:
            if store is None:
                change = create_store(
                    session=session,
                    external_id=row.external_id,
                    actor=actor,
                    now=now,
                    **row.values,
                )
                created.append(row.external_id)
                changes.append(change)
                continue
            change = update_store(
                session=session,
                store=store,
                actor=actor,
                now=now,
                **{key: row.values[key] for key in _EDITABLE if key in row.values},
            )
        except BetaError as error:
            raise InvalidInput(
                f"line {row.line_no}: {error.message}", field=error.field or "file"
            ) from error
        if change.before == change.after:
            unchanged.append(row.external_id)
        else:
            updated.append(row.external_id)
            changes.append(change)
    return ImportResult(
        created=tuple(created),
        updated=tuple(updated),
        unchanged=tuple(unchanged),
        skipped_lines=report.rejected,
        changes=tuple(changes),
    )


def import_stores(
    *,
    session: Session,
    data: str | bytes,
    actor: str,
    now: datetime,
    accept_valid: bool = False,
) -> tuple[ImportReport, ImportResult]:
    """Preview and apply in one call (the usual path when the user re-submits the file)."""
    report = preview_import(session=session, data=data)
    return report, apply_import(
        session=session, report=report, actor=actor, now=now, accept_valid=accept_valid
    )
