"""What the index holds, source by source, and the reactions that keep it current.

- :data:`RELEASE_NOTES` (``release``): per release with notes, every commit the notes engine
  stored (``ReleaseNote.data``: the shown entries by section and area, and the filtered
  ones but merge commits, with why they are not in the notes), the store-facing notes, and
  what people wrote into the notes beyond the commits. Store-facing notes come from the
  generated entries (their ``Release-Note:`` text) while the notes are not edited, and from
  the edited text's "For stores" section once they are; other edited paragraphs and list
  items are indexed when the generated text does not have them (a commit line kept as
  generated is already there as its commit).
- :data:`INCIDENTS` (``incident``): an incident's title.
- :data:`MEETING_MINUTES` (``minutes``): the minutes of each week's release meeting
  (``service.meetings``), paragraph by paragraph. A meeting is every app's, so its minutes
  belong to no app (an app filter leaves them out).

Each reaction below is named in ``service/wiring.py`` and runs in the transaction of the
change (see :mod:`service.search.index`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from flask import url_for
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from release_notes.commits import KIND_TITLES
from service.incidents.models import Incident
from service.meetings.models import Meeting
from service.meetings.services import MeetingEvent
from service.releases.models import Release, ReleaseNote
from service.search.index import Entry, Owner, refresh
from service.search.models import SearchDoc
from service.search.text import clean, normalize

# Releases whose notes are read at once when rebuilding (each holds every commit's data).
RELEASE_BATCH = 20
COMMIT_KINDS = {"feat": "feature", "fix": "fix"}  # every other commit kind is a "change"
DEFAULT_AREA = "General"
# Headings of the notes, in the generated English and as people may write them.
_STORE_HEADING = re.compile(r"store|店舗|お店", re.IGNORECASE)
_FEATURE_HEADING = re.compile(r"^(features?|new|新機能|機能)", re.IGNORECASE)
_FIX_HEADING = re.compile(r"^(fix|bug|修正|不具合)", re.IGNORECASE)
# The links after a generated line: "(#12, abc1234)" or "(abc1234)".
_REF = r"(?:#\d+|[0-9a-f]{7,40})"
_TRAILING_REF = re.compile(rf"\s*\({_REF}(?:,\s*{_REF})*\)\s*$")


# --- the notes as blocks -----------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A paragraph or top-level list item of a note, as plain text, under its headings."""

    headings: tuple[str, ...]  # the level-2 and level-3 headings above it
    text: str


_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t#]*$")
_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])(?:[ \t]+\[[ xX]\])?(?:[ \t]+|$)")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_QUOTE = re.compile(r"^ {0,3}(?:>[ \t]?)+")
_IMAGE_OR_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
# A backslash escape (kept as its character) or an emphasis or code mark (dropped).
_MARKS = re.compile(r"\\([!-/:-@\[-`{-~])|\*{1,3}|_{2,3}|~~|`+")


def _plain(line: str) -> str:
    """One line of Markdown as the text a reader sees (links, emphasis, code marks off)."""
    if not any(c in line for c in "[*_~`\\"):
        return line
    line = _IMAGE_OR_LINK.sub(r"\1", line)
    return _MARKS.sub(lambda m: m.group(1) or "", line)


def note_blocks(markdown: str) -> list[Block]:
    """The paragraphs and top-level list items (with what is nested in them) of
    ``markdown``, as plain text under their headings; the document's title (level 1) and
    the headings themselves are not blocks.

    A light reading of Markdown, line by line, enough to index a note (markdown-it reads
    the generated notes of a year of releases in tens of seconds; this in a fraction)."""
    headings: dict[int, str] = {}
    blocks: list[Block] = []
    lines: list[str] = []
    in_item = blank = False
    fence = ""

    def flush() -> None:
        nonlocal in_item, blank
        text = clean(" ".join(lines))
        if text:
            path = tuple(headings[level] for level in sorted(headings) if level >= 2)
            blocks.append(Block(path, text))
        lines.clear()
        in_item = blank = False

    for raw in markdown.split("\n"):
        if fence:
            if raw.strip().startswith(fence):
                fence = ""
            else:
                lines.append(raw.strip())
            continue
        opening = _FENCE.match(raw)
        if opening:
            if not in_item or (blank and not raw.startswith((" ", "\t"))):
                flush()
            fence = opening.group(1)
            continue
        heading = _HEADING.match(raw)
        if heading:
            flush()
            level = len(heading.group(1))
            for deeper in [lvl for lvl in headings if lvl >= level]:
                del headings[deeper]
            headings[level] = clean(_plain(heading.group(2) or ""))
            continue
        if not raw.strip():
            if in_item:
                blank = True
            else:
                flush()
            continue
        line = _QUOTE.sub("", raw)
        item = _ITEM.match(line)
        indented = raw.startswith(("  ", "\t"))
        if item and not (in_item and indented):
            flush()
            in_item = True
        elif in_item and blank and not indented:
            flush()  # a paragraph after the list
        lines.append(_plain(line[item.end() :] if item else line.strip()))
    flush()
    return blocks


def _edited_entries(generated: str, edited: str) -> list[Entry]:
    """The store-facing notes of an edited note, and its text the generated one lacks."""
    known = {normalize(clean(b.text)) for b in note_blocks(generated)}
    entries = []
    for block in note_blocks(edited):
        where = " › ".join(block.headings)
        text = clean(block.text)
        if block.headings and _STORE_HEADING.search(block.headings[0]):
            note = _TRAILING_REF.sub("", text)
            area = " › ".join(block.headings[1:])
            section = f"For stores · {area}" if area else "For stores"
            entries.append(Entry("store", section, note, target=note))
        elif normalize(text) not in known:
            top = block.headings[0] if block.headings else ""
            kind = (
                "feature"
                if _FEATURE_HEADING.search(top)
                else "fix"
                if _FIX_HEADING.search(top)
                else "notes"
            )
            section = f"Edited notes · {where}" if where else "Edited notes"
            entries.append(Entry(kind, section, "", text, target=text))
    return entries


def _commit_body(item: dict[str, Any]) -> str:
    parts = [item.get("body") or ""]
    if item.get("breaking_description"):
        parts.append(f"Breaking: {item['breaking_description']}")
    return " ".join(p for p in parts if p)


def _area_order(area: str) -> tuple[bool, str]:
    return area == DEFAULT_AREA, area.lower()


def release_entries(
    data: dict[str, Any] | None, generated: str, edited_markdown: str | None
) -> list[Entry]:
    """The documents of a release's notes (``ReleaseNote.data``, ``generated_markdown`` and
    ``edited_markdown``): store-facing notes, edited text, then every commit."""
    data = data or {}
    shown: list[dict[str, Any]] = data.get("shown") or []
    edited = edited_markdown is not None
    entries: list[Entry] = []
    if edited:
        entries += _edited_entries(generated, edited_markdown or "")
    else:
        stores = [i for i in shown if i.get("release_note")]
        for item in sorted(stores, key=lambda i: _area_order(i.get("area") or "")):
            text = item["release_note"]
            section = f"For stores · {item.get('area') or DEFAULT_AREA}"
            entries.append(Entry("store", section, text, target=text))
    for item in shown:
        kind = item.get("kind") or "other"
        section = f"{KIND_TITLES.get(kind, 'Other changes')} · {item.get('area') or DEFAULT_AREA}"
        subject = item.get("subject") or item.get("header") or ""
        entries.append(
            Entry(
                COMMIT_KINDS.get(kind, "change"),
                section,
                subject,
                _commit_body(item),
                target=subject.replace("`", ""),
            )
        )
    for item in data.get("filtered") or []:
        if item.get("reason") == "merge":
            continue
        entries.append(
            Entry(
                "change",
                f"Not in the notes · {item.get('reason') or 'filtered'}",
                item.get("subject") or item.get("header") or "",
                _commit_body(item),
            )
        )
    return entries


def text_fragment(text: str) -> str:
    """A URL text fragment (``#:~:text=``) that scrolls to and marks ``text`` on the page;
    long text is named by its start and end."""
    text = clean(text)
    if not text:
        return ""

    def enc(part: str) -> str:
        return quote(part, safe="").replace("-", "%2D")

    if len(text) <= 80:
        return f"#:~:text={enc(text)}"
    start, end = text[:40], text[-30:]
    if " " in start:
        start = start[: start.rfind(" ")]
    if " " in end:
        end = end[end.find(" ") + 1 :]
    return f"#:~:text={enc(start)},{enc(end)}"


# --- the sources -------------------------------------------------------------------------


class ReleaseNotesSource:
    name = "release"

    def owners(self, session: Session, keys: Sequence[int] | None) -> Iterator[Owner]:
        stmt = select(ReleaseNote.release_id).order_by(col(ReleaseNote.release_id))
        if keys is not None:
            stmt = stmt.where(col(ReleaseNote.release_id).in_(keys))
        ids = list(session.exec(stmt).all())
        for start in range(0, len(ids), RELEASE_BATCH):
            chunk = ids[start : start + RELEASE_BATCH]
            # Columns, not objects: a rebuild reads every note once and keeps none.
            rows = session.connection().execute(
                core_select(
                    col(Release.id),
                    col(Release.app_id),
                    col(Release.version),
                    col(Release.created_at),
                    col(ReleaseNote.data),
                    col(ReleaseNote.generated_markdown),
                    col(ReleaseNote.edited_markdown),
                )
                .join(ReleaseNote, col(ReleaseNote.release_id) == col(Release.id))
                .where(col(Release.id).in_(chunk))
                .order_by(col(Release.id))
            )
            for release_id, app_id, version, created_at, data, generated, edited in rows:
                yield Owner(
                    key=release_id or 0,
                    on_date=created_at.date(),
                    app_id=app_id,
                    release_id=release_id,
                    version=version,
                    entries=release_entries(data, generated, edited),
                )

    def link(self, doc: SearchDoc) -> str:
        url = url_for("notes.notes_page", release_id=doc.release_id)
        return url + text_fragment(doc.target)

    def notes_changed(self, session: Session, release: Release, _actor: str, _before: str) -> None:
        """Reaction: a release's notes were generated or edited."""
        refresh(session, self, release.id or 0)


class IncidentsSource:
    name = "incident"

    def owners(self, session: Session, keys: Sequence[int] | None) -> Iterator[Owner]:
        stmt = select(Incident, Release).outerjoin(
            Release, col(Release.id) == col(Incident.release_id)
        )
        if keys is not None:
            stmt = stmt.where(col(Incident.id).in_(keys))
        for incident, release in session.exec(stmt.order_by(col(Incident.id))).all():
            state = "resolved" if incident.resolved_at else "open"
            yield Owner(
                key=incident.id or 0,
                on_date=incident.started_at.date(),
                app_id=incident.app_id,
                release_id=incident.release_id,
                version=release.version if release else None,
                entries=[
                    Entry(
                        "incident",
                        f"Incident #{incident.id} · score {incident.score} · {state}",
                        incident.title,
                    )
                ],
            )

    def link(self, doc: SearchDoc) -> str:
        return url_for("incidents.detail", incident_id=doc.owner_key)

    def changed(self, session: Session, incident: Incident) -> None:
        """Reaction: an incident was recorded or changed."""
        refresh(session, self, incident.id or 0)


class MeetingMinutesSource:
    name = "minutes"

    def owners(self, session: Session, keys: Sequence[int] | None) -> Iterator[Owner]:
        stmt = select(Meeting)
        if keys is not None:
            stmt = stmt.where(col(Meeting.id).in_(keys))
        for meeting in session.exec(stmt.order_by(col(Meeting.id))).all():
            entries = []
            for block in note_blocks(meeting.minutes or ""):
                where = " · ".join((f"Meeting {meeting.week}", *block.headings))
                entries.append(Entry("minutes", where, "", block.text, target=block.text))
            yield Owner(key=meeting.id or 0, on_date=meeting.week_start, entries=entries)

    def link(self, doc: SearchDoc) -> str:
        week = doc.section.removeprefix("Meeting ").split(" · ", 1)[0]
        return url_for("meetings.week", week=week) + text_fragment(doc.target)

    def meeting_event(self, session: Session, event: MeetingEvent) -> None:
        """Reaction (every meeting event): the minutes were saved."""
        if event.kind == "minutes_saved":
            refresh(session, self, event.meeting.id or 0)


RELEASE_NOTES = ReleaseNotesSource()
INCIDENTS = IncidentsSource()
MEETING_MINUTES = MeetingMinutesSource()
