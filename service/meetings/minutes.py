"""A closed meeting's minutes, published to Notion: a page per week in the meetings database
(``RELGOV_NOTION_MEETINGS_DATABASE_ID``).

Closing a meeting, and amending one of its decisions afterwards, queues a job (kind
:data:`KIND`, key ``minutes:<week>``, coalesced) when the meetings database is configured;
without it nothing is queued and the week page says where the minutes would go. A release
manager can ask again (the page's "Publish again" / "Retry", the API).

The page is made by the release notes' machinery (``service/publishing/notion_publish.py``
over ``release_notes/notion.py``): the same publisher with another page kind
(:data:`MINUTES_SCHEMA`), its ledger of the page's blocks in ``meeting_notion_page``, so
a re-publish writes only the blocks that changed and a retry goes on where the failed
attempt stopped; the same shared rate limit and circuit breaker; the "Publish key" that
finds a page whose create answer was lost before Notion's search shows it.

Page: title "Release meeting 2026-W42"; properties Week, Date (its Monday), Decisions,
Amendments, Status (Publishing / Published / Failed), Record link, Minutes hash, Publish
key; blocks: when and by whom it was held, attendees, each release's decision (reason,
conditions, who decided, when), releases left undecided, the minutes, the action items
(owner, due date, state), overrides and amendments.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import Flask, current_app, has_app_context
from sqlmodel import Session

from release_notes.notion import PageSchema
from release_notes.notion_blocks import MAX_LINK_URL, Block, chunk_rich_text, plain_rich_text
from service import audit, db, jobs
from service.jobs import breaker
from service.jobs.models import Job
from service.meetings import services
from service.meetings.models import Meeting, MinutesPage
from service.meetings.services import MeetingError, MeetingEvent
from service.models import utcnow
from service.publishing import notion_publish
from service.settings import Settings

KIND = "meeting_minutes"
ACTOR = "system:publisher"
NOT_CONFIGURED = (
    "Notion is not configured for meeting minutes: set NOTION_TOKEN and "
    "RELGOV_NOTION_MEETINGS_DATABASE_ID for the service, then publish again."
)
MINUTES_SCHEMA = PageSchema(
    properties={
        "Meeting": "title",
        "Week": "rich_text",
        "Date": "date",
        "Decisions": "number",
        "Amendments": "number",
        "Status": "select",
        "Record link": "url",
        "Minutes hash": "rich_text",
        "Publish key": "rich_text",
    },
    hash_property="Minutes hash",
    name="meeting-minutes",
    auto_init=True,  # the meetings database is the service's: its properties are added
)
STATE_LABELS = {
    "none": "Not published",
    "queued": "Queued",
    "publishing": "Publishing",
    "published": "Published",
    "failed": "Failed",
}
STATE_BADGES = {
    "none": "",
    "queued": "info",
    "publishing": "info",
    "published": "good",
    "failed": "bad",
}


def job_key(week: str) -> str:
    return f"minutes:{week}"


def title_of(week: str) -> str:
    return f"Release meeting {week}"


def _settings(app: Flask | None = None) -> Settings:
    result: Settings = (app or current_app).config["RELGOV_SETTINGS"]
    return result


# --- the page ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MinutesContent:
    """A week's minutes page (a ``release_notes.notion.PageSpec``)."""

    week: str
    monday: date
    decisions: int
    amendments: int
    link: str | None
    blocks: tuple[Block, ...]

    def identity(self) -> list[dict[str, Any]]:
        return [{"property": "Week", "rich_text": {"equals": self.week}}]

    def properties(self) -> dict[str, Any]:
        link = self.link if self.link and len(self.link) <= MAX_LINK_URL else None
        return {
            "Meeting": {"title": plain_rich_text(title_of(self.week))},
            "Week": {"rich_text": plain_rich_text(self.week)},
            "Date": {"date": {"start": self.monday.isoformat()}},
            "Decisions": {"number": self.decisions},
            "Amendments": {"number": self.amendments},
            "Record link": {"url": link},
        }

    def content_hash(self) -> str:
        payload = {"v": 1, "properties": self.properties(), "blocks": list(self.blocks)}
        encoded = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
        return "sha256:" + hashlib.sha256(encoded).hexdigest()

    def to_blocks(self) -> list[Block]:
        return list(self.blocks)


def _text(kind: str, text: str, **extra: Any) -> Block:
    items = plain_rich_text(text)
    return {"object": "block", "type": kind, kind: {"rich_text": items, **extra}}


def _bold_first(kind: str, head: str, rest: str, **extra: Any) -> Block:
    block = _text(kind, head + rest, **extra)
    first = plain_rich_text(head)
    if first and len(first) == 1:
        first[0]["annotations"] = {"bold": True}
        block[kind]["rich_text"] = first + plain_rich_text(rest)
    return block


def _paragraphs(text: str) -> list[Block]:
    """Plain text as paragraphs (one per line; long lines split at Notion's limits)."""
    out: list[Block] = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        for items in chunk_rich_text(plain_rich_text(line)):
            out.append({"object": "block", "type": "paragraph", "paragraph": {"rich_text": items}})
    return out


def _who(actor: str | None) -> str:
    return (actor or "").removeprefix("user:") or "—"


def _day(moment: str | None) -> str:
    return (moment or "")[:16].replace("T", " ") + (" UTC" if moment else "")


def minutes_blocks(record: dict[str, Any], link: str | None) -> list[Block]:
    """The page's blocks from a meeting's record (``services.meeting_record``)."""
    blocks: list[Block] = []
    held = (
        f"Week {record['week']} ({record['monday']} – {record['sunday']}, "
        f"{record['timezone']}). Opened by {_who(record['opened_by'])} "
        f"{_day(record['opened_at'])}; closed by {_who(record['closed_by'])} "
        f"{_day(record['closed_at'])}."
    )
    blocks.append(_text("paragraph", held))
    if link:
        blocks.append(
            {
                "object": "block",
                "type": "paragraph",
                "paragraph": {
                    "rich_text": [
                        {
                            "type": "text",
                            "text": {
                                "content": "Open in release governance",
                                "link": {"url": link},
                            },
                        }
                    ]
                },
            }
        )

    blocks.append(_text("heading_2", "Attendees"))
    if record["attendees"]:
        for a in record["attendees"]:
            role = "guest" if a["guest"] else a["role"].replace("_", " ")
            blocks.append(_text("bulleted_list_item", f"{a['name']} ({role})"))
    else:
        blocks.append(_text("paragraph", "Nobody recorded."))

    blocks.append(_text("heading_2", "Decisions"))
    for d in record["decisions"]:
        lines = [f"Reason: {d['reason']}"]
        if d["conditions"]:
            lines.append(f"Conditions: {d['conditions']}")
        lines.append(
            f"Decided by {_who(d['decided_by'])} {_day(d['at'])}"
            + (" (amended after the meeting)" if d["amendment"] else "")
        )
        item = _bold_first(
            "bulleted_list_item", f"{d['app_name']} {d['version']}", f" — {d['label']}"
        )
        item["bulleted_list_item"]["children"] = [c for line in lines for c in _paragraphs(line)]
        blocks.append(item)
    if not record["decisions"]:
        blocks.append(_text("paragraph", "No decision was recorded."))
    if record["undecided"]:
        blocks.append(_text("heading_3", "Left undecided (carried over)"))
        for u in record["undecided"]:
            blocks.append(_text("bulleted_list_item", f"{u['app']} {u['version']}"))

    blocks.append(_text("heading_2", "Minutes"))
    blocks.extend(_paragraphs(record["minutes"]) or [_text("paragraph", "No minutes written.")])

    blocks.append(_text("heading_2", "Action items"))
    for a in record["action_items"]:
        state = a["state"] + (", overdue" if a["overdue"] else "")
        detail = f" — {a['owner_name']}, due {a['due_on']} ({state})"
        if a["state"] == "closed" and a["close_note"]:
            detail += f": {a['close_note']}"
        blocks.append(_bold_first("to_do", a["title"], detail, checked=a["state"] == "closed"))
    if not record["action_items"]:
        blocks.append(_text("paragraph", "No action items."))

    found = [(d, o) for d in record["decisions"] for o in d.get("overrides", [])]
    blocks.append(_text("heading_2", "Overrides"))
    for d, o in found:
        why = f": {o['reason']}" if o.get("reason") else ""
        blocks.append(
            _text(
                "bulleted_list_item",
                f"{d['app_name']} {d['version']}: {o['what']} overridden by {_who(o['by'])}{why}",
            )
        )
    if not found:
        blocks.append(_text("paragraph", "No overrides."))

    if record["amendments"]:
        blocks.append(_text("heading_2", "Amendments"))
        for d in record["amendments"]:
            blocks.append(
                _text(
                    "bulleted_list_item",
                    f"{_day(d['at'])}: {d['app_name']} {d['version']} — {d['label']} by "
                    f"{_who(d['decided_by'])} ({d['reason']})",
                )
            )
    return blocks


def minutes_content(record: dict[str, Any], settings: Settings) -> MinutesContent:
    link = f"{settings.base_url}/meetings/{record['week']}"
    return MinutesContent(
        week=record["week"],
        monday=date.fromisoformat(record["monday"]),
        decisions=len(record["decisions"]),
        amendments=len(record["amendments"]),
        link=link,
        blocks=tuple(minutes_blocks(record, link)),
    )


# --- asking for it -------------------------------------------------------------------------


def destination(settings: Settings) -> str:
    """Where the minutes go (or would go), in words."""
    if settings.minutes_configured:
        return f"Notion database {settings.notion_meetings_database_id}"
    return (
        "a Notion database named by RELGOV_NOTION_MEETINGS_DATABASE_ID (with NOTION_TOKEN); "
        "not configured yet"
    )


def page_row(session: Session, meeting: Meeting) -> MinutesPage | None:
    return session.get(MinutesPage, meeting.id)


def request_minutes(
    session: Session,
    meeting: Meeting,
    *,
    actor: str,
    reason: str,
    run_now: bool = True,
    settings: Settings | None = None,
) -> Job:
    """Queue (or coalesce into) the week's minutes job, in the caller's transaction."""
    settings = settings or _settings()
    if meeting.state != "closed":
        raise MeetingError(
            f"the meeting of {meeting.week} is still open: its minutes are published once "
            "it is closed",
            status=409,
        )
    if not settings.minutes_configured:
        raise MeetingError(NOT_CONFIGURED, status=409)
    job = jobs.enqueue(
        session,
        KIND,
        key=job_key(meeting.week),
        payload={"meeting_id": meeting.id, "actor": actor, "reason": reason},
        run_now=run_now,
        actor=actor,
    )
    row = page_row(session, meeting)
    before = row.publish_state if row else "none"
    if row is None:
        row = MinutesPage(meeting_id=meeting.id or 0)
    row.publish_state = "queued"
    session.add(row)
    audit.record(
        session,
        actor=actor,
        action="minutes.publish_queued",
        subject_type="meeting",
        subject_id=meeting.week,
        before={"publish_state": before},
        after={"publish_state": "queued", "job": job.id, "reason": reason},
        summary=f"queued publishing the minutes of {meeting.week} to Notion ({reason})",
    )
    return job


def on_meeting_event(session: Session, event: MeetingEvent) -> None:
    """A meeting reaction: closing a meeting, or amending it, (re)publishes its minutes when
    the meetings database is configured (otherwise the week page says where they'd go)."""
    if event.kind not in ("closed", "amended"):
        return
    if not has_app_context() or not _settings().minutes_configured:
        return
    reason = "meeting closed" if event.kind == "closed" else "decision amended"
    request_minutes(session, event.meeting, actor=event.actor, reason=reason, run_now=True)


# --- the job -------------------------------------------------------------------------------


def _meeting_of(session: Session, job: Job) -> Meeting:
    meeting_id = job.payload.get("meeting_id")
    meeting = session.get(Meeting, meeting_id) if isinstance(meeting_id, int) else None
    if meeting is None:
        raise jobs.PermanentJobError(f"meeting {meeting_id} no longer exists")
    if meeting.state != "closed":
        raise jobs.PermanentJobError(f"the meeting of {meeting.week} is not closed")
    return meeting


def handle_publish(ctx: jobs.JobContext) -> str:
    """One attempt at a week's minutes page (``notion_publish.publish_attempt``)."""
    settings = _settings(ctx.app)
    if not settings.minutes_configured:
        raise jobs.PermanentJobError(NOT_CONFIGURED)
    with db.session_scope() as session:
        meeting = _meeting_of(session, ctx.job)
        notion_publish.wait_for_breaker(session, ctx, kinds=(KIND,))
        record = services.meeting_record(session, meeting)
        content = minutes_content(record, settings)
        row = page_row(session, meeting) or MinutesPage(meeting_id=meeting.id or 0)
        row.publish_state = "publishing"
        session.add(row)
        meeting_id = meeting.id or 0
    ledger = notion_publish.DbLedger(
        ctx.app.extensions["relgov.engine"], meeting_id, table=MinutesPage
    )
    result = notion_publish.publish_attempt(
        ctx,
        content,
        ledger,
        database_id=settings.notion_meetings_database_id,
        schema=MINUTES_SCHEMA,
    )
    with db.session_scope() as session:
        breaker.record_success(session, notion_publish.BREAKER, now=ctx.now)
        meeting = _meeting_of(session, ctx.job)
        row = page_row(session, meeting) or MinutesPage(meeting_id=meeting.id or 0)
        before = {"publish_state": row.publish_state, "digest": row.published_digest}
        pending = notion_publish.follow_up(
            session, result, KIND, job_key(meeting.week), {"meeting_id": meeting.id}, now=ctx.now
        )
        row.publish_state = "queued" if pending else "published"
        row.notion_url = result.url
        if result.action != "skipped" or row.published_digest != record["digest"]:
            row.published_at = ctx.now
        row.published_digest = record["digest"]
        row.last_error = None
        session.add(row)
        verb = {"created": "created", "updated": "updated", "skipped": "unchanged, skipped"}
        audit.record(
            session,
            actor=str(ctx.job.payload.get("actor") or ACTOR),
            action="minutes.published",
            subject_type="meeting",
            subject_id=meeting.week,
            before=before,
            after={
                "publish_state": row.publish_state,
                "digest": row.published_digest,
                "notion_page_id": result.page_id,
                "action": result.action,
                "job": ctx.job.id,
            },
            summary=f"minutes of {meeting.week} published to Notion ({verb[result.action]})",
        )
    return f"{result.action} {result.url or result.page_id} ({result.requests} requests)"


def on_publish_error(session: Session, job: Job, message: str, final: bool) -> None:
    """A failed attempt, in the transaction that records it: the week page says so."""
    meeting_id = job.payload.get("meeting_id")
    meeting = session.get(Meeting, meeting_id) if isinstance(meeting_id, int) else None
    if meeting is None:
        return
    row = page_row(session, meeting) or MinutesPage(meeting_id=meeting.id or 0)
    before = row.publish_state
    row.publish_state = "failed" if final else "queued"
    row.last_error = message[:2000]
    row.updated_at = utcnow()
    session.add(row)
    if final:
        audit.record(
            session,
            actor=ACTOR,
            action="minutes.publish_failed",
            subject_type="meeting",
            subject_id=meeting.week,
            before={"publish_state": before},
            after={"publish_state": "failed", "error": message[:500], "job": job.id},
            summary=f"publishing the minutes of {meeting.week} to Notion failed: {message[:200]}",
            highlight=True,
        )


# --- status for the week page and the API -------------------------------------------------


def minutes_status(
    session: Session, meeting: Meeting | None, *, settings: Settings | None = None
) -> dict[str, Any]:
    """What the week page's "Minutes in Notion" panel and the API show."""
    settings = settings or _settings()
    row = page_row(session, meeting) if meeting is not None else None
    state = row.publish_state if row else "none"
    job = jobs.latest_job(session, job_key(meeting.week)) if meeting is not None else None
    closed = meeting is not None and meeting.state == "closed"
    up_to_date = None
    if closed and row is not None and row.published_digest:
        assert meeting is not None
        up_to_date = row.published_digest == services.meeting_record(session, meeting)["digest"]
    return {
        "week": meeting.week if meeting else None,
        "title": title_of(meeting.week) if meeting else None,
        "configured": settings.minutes_configured,
        "destination": destination(settings),
        "closed": closed,
        "state": state,
        "state_label": STATE_LABELS.get(state, state),
        "badge": STATE_BADGES.get(state, ""),
        "notion_url": row.notion_url if row else None,
        "notion_page_id": row.page_id if row else None,
        "published_at": row.published_at if row else None,
        "up_to_date": up_to_date,
        "last_error": row.last_error if row else None,
        "job": notion_publish.job_status(job),
        "breaker": notion_publish.breaker_status(session),
        "can_publish": closed and settings.minutes_configured,
        "button": "Retry" if state == "failed" else ("Publish now" if not row else "Publish again"),
    }
