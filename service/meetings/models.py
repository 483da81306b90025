"""The weekly meeting, its agenda items (with the snapshot frozen when it opened), decisions,
attendees and action items."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.models import utcnow

MEETING_STATES = ("open", "closed")
DECISIONS = ("go", "go_with_conditions", "no_go", "defer")
DECISION_LABELS = {
    "go": "Go",
    "go_with_conditions": "Go with conditions",
    "no_go": "No-go",
    "defer": "Defer to the next train",
}
# Why a release is on a week's agenda.
AGENDA_REASONS = ("train", "hotfix", "carried", "added")


class Meeting(SQLModel, table=True):
    """The release meeting of one ISO week (for every app), from the moment it is opened."""

    __tablename__ = "meeting"

    id: int | None = Field(default=None, primary_key=True)
    week: str = Field(max_length=8, unique=True)  # ISO week, e.g. "2026-W42"
    week_start: date  # its Monday
    timezone: str = Field(max_length=64)  # the meeting's zone when it was opened
    state: str = Field(default="open", max_length=16)
    opened_by: str = Field(max_length=254)
    opened_at: datetime = Field(default_factory=utcnow)
    closed_by: str | None = Field(default=None, max_length=254)
    closed_at: datetime | None = None
    minutes: str = Field(default="", sa_column=Column(Text, nullable=False))
    minutes_revision: int = 0  # bumped by every save; a stale save is refused
    # Made by migration 0007 from the per-release meeting records of that week.
    imported: bool = False


class MeetingItem(SQLModel, table=True):
    """A release on a meeting's agenda, and what the meeting saw of it when it opened (or
    when the release was added)."""

    __tablename__ = "meeting_item"
    __table_args__ = (UniqueConstraint("meeting_id", "release_id", name="uq_meeting_item"),)

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="meeting.id", index=True)
    release_id: int = Field(foreign_key="release.id", index=True)
    position: int = 0
    reason: str = Field(max_length=16)  # train | hotfix | carried | added
    reason_detail: str = Field(default="", max_length=300)
    snapshot: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    snapshot_at: datetime = Field(default_factory=utcnow)
    added_by: str = Field(max_length=254)


class MeetingDecision(SQLModel, table=True):
    """Append-only: a release's decision in a meeting is its latest row; an amendment (after
    the meeting closed) is a row of its own, highlighted."""

    __tablename__ = "meeting_decision"
    __table_args__ = (Index("ix_meeting_decision_meeting_release", "meeting_id", "release_id"),)

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="meeting.id")
    release_id: int = Field(foreign_key="release.id", index=True)
    decision: str = Field(max_length=24)
    reason: str = Field(max_length=2000)
    conditions: str = Field(default="", max_length=2000)
    decided_by: str = Field(max_length=254)
    at: datetime = Field(default_factory=utcnow)
    amendment: bool = False
    # What the decision did to the release: {"transition": ..., "state": [before, after],
    # "scheduled_for": [before, after], "note": ...}.
    effect: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # The release as the meeting saw it when deciding.
    snapshot: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class MeetingAttendee(SQLModel, table=True):
    """Who attended: a person of the service, or a guest named by hand."""

    __tablename__ = "meeting_attendee"

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="meeting.id", index=True)
    user_id: int | None = Field(default=None, foreign_key="user_account.id")
    name: str = Field(max_length=200)
    role: str = Field(default="", max_length=32)  # the person's role then; "" for a guest


class ActionItem(SQLModel, table=True):
    """Something a person does after a meeting, by a date. Open until someone closes it; an
    open item shows in every following week's meeting."""

    __tablename__ = "action_item"

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="meeting.id", index=True)
    release_id: int | None = Field(default=None, foreign_key="release.id")
    title: str = Field(max_length=500)
    owner_id: int = Field(foreign_key="user_account.id", index=True)
    owner_name: str = Field(max_length=200)
    due_on: date
    created_by: str = Field(max_length=254)
    created_at: datetime = Field(default_factory=utcnow)
    closed_by: str | None = Field(default=None, max_length=254)
    closed_at: datetime | None = None
    close_note: str = Field(default="", max_length=2000)


NOTIFICATION_STATES = ("pending", "not_sent")


MINUTES_STATES = ("queued", "publishing", "published", "failed")


class MinutesPage(SQLModel, table=True):
    """A closed meeting's minutes page in Notion: what people see of its publishing (state,
    link, last error, the record digest last published) and the publisher's ledger of the
    page (``page_id``, ``publish_key``, ``state``: ``release_notes.notion.PageRecord``, as
    for a release's notes). A row exists once publishing was first asked for."""

    __tablename__ = "meeting_notion_page"

    meeting_id: int = Field(foreign_key="meeting.id", primary_key=True)
    page_id: str | None = Field(default=None, max_length=64)
    publish_key: str = Field(default="", max_length=64)
    state: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)
    publish_state: str = Field(default="queued", max_length=16)
    notion_url: str | None = Field(default=None, max_length=2000)
    published_at: datetime | None = None
    published_digest: str | None = Field(default=None, max_length=64)
    last_error: str | None = Field(default=None, max_length=2000)
