"""Apps, their weekly trains, releases, notes, checklists, sign-offs and meeting records."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.models import utcnow

RELEASE_KINDS = ("weekly", "hotfix")
STATES = (
    "draft",
    "in_review",
    "approved",
    "beta",
    "rolling_out",
    "released",
    "rejected",
    "halted",
    "cancelled",
)
DECISIONS = ("approve", "reject", "block")
ITEM_MODES = ("manual", "automatic")
AUTOMATIC_RULES = {
    "notes_generated": "Release notes generated from git history",
    "commits_linked": "Every commit is linked to a pull request",
    "notes_published": "Release notes published to Notion",
    "beta_adoption": "Beta adoption reached the app's target",
    "beta_soak": "Beta soaked for the app's minimum business days",
    "incident_score": "No beta incident at or above the app's score threshold",
}


class App(SQLModel, table=True):
    __tablename__ = "app"

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=32, unique=True, index=True)
    name: str = Field(max_length=200)
    repo_url: str = Field(default="", max_length=1000)
    default_branch: str = Field(default="main", max_length=200)
    version_scheme: str = Field(default="semver", max_length=16)  # semver | calver
    area_map: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    pr_url_template: str = Field(default="", max_length=500)  # .../pull/{number}
    train_weekday: int = Field(default=2)  # Monday = 0
    train_time: str = Field(default="14:00", max_length=5)
    train_timezone: str = Field(default="Asia/Tokyo", max_length=64)
    min_supported_version: str | None = Field(default=None, max_length=128)
    rollout_stages: list[int] = Field(
        default_factory=lambda: [10, 50, 100], sa_column=Column(JSON, nullable=False)
    )
    beta_adoption_target: float = 80.0  # percent
    beta_stall_hours: int = 48
    beta_soak_days: int = 2  # business days
    incident_score_threshold: int = 6
    # Incidents and gates: the holiday calendar the beta soak counts business days with
    # (a ``holidays`` country code, or "none"), and whether failing gates refuse promotion.
    holiday_calendar: str = Field(default="JP", max_length=16)
    promotion_gates: bool = False
    separation_of_duties: bool = True
    auto_publish: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class TrainSkip(SQLModel, table=True):
    """A week the train does not run, and why."""

    __tablename__ = "train_skip"
    __table_args__ = (UniqueConstraint("app_id", "week_of", name="uq_train_skip_week"),)

    id: int | None = Field(default=None, primary_key=True)
    app_id: int = Field(foreign_key="app.id", index=True)
    week_of: date
    reason: str = Field(max_length=1000)
    actor: str = Field(max_length=254)
    at: datetime = Field(default_factory=utcnow)


class Release(SQLModel, table=True):
    __tablename__ = "release"
    __table_args__ = (
        UniqueConstraint("app_id", "version", name="uq_release_app_version"),
        Index("ix_release_app_state", "app_id", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    app_id: int = Field(foreign_key="app.id", index=True)
    version: str = Field(max_length=128)
    kind: str = Field(default="weekly", max_length=16)
    state: str = Field(default="draft", max_length=16, index=True)
    halted_from: str | None = Field(default=None, max_length=16)
    git_ref: str = Field(default="", max_length=255)
    from_ref: str | None = Field(default=None, max_length=255)
    to_sha: str | None = Field(default=None, max_length=64)
    scheduled_for: datetime | None = None
    stage_percent: int = 0  # share of non-beta stores offered the release while rolling out
    created_by: str = Field(max_length=254)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    approved_by: str | None = Field(default=None, max_length=254)
    approved_at: datetime | None = None
    rejected_reason: str | None = Field(default=None, max_length=2000)
    beta_at: datetime | None = None
    rollout_started_at: datetime | None = None
    released_at: datetime | None = None
    template_id: int | None = Field(default=None, foreign_key="checklist_template.id")
    # Bumped by every transition; forms carry it so a stale page gets a conflict message.
    lock_version: int = 1


class ReleaseNote(SQLModel, table=True):
    __tablename__ = "release_note"

    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(foreign_key="release.id", unique=True)
    generated_markdown: str = Field(default="", sa_column=Column(Text, nullable=False))
    edited_markdown: str | None = Field(default=None, sa_column=Column(Text))
    # The generated text the edit started from, to show a conflict after regenerating.
    edit_base_markdown: str | None = Field(default=None, sa_column=Column(Text))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    commit_count: int = 0
    pr_count: int = 0
    breaking_count: int = 0
    unlinked_commits: list[dict[str, str]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    generation_error: str | None = Field(default=None, max_length=2000)
    generated_at: datetime | None = None
    edited_by: str | None = Field(default=None, max_length=254)
    edited_at: datetime | None = None
    # Notion publishing
    notion_page_id: str | None = Field(default=None, max_length=64)
    notion_url: str | None = Field(default=None, max_length=500)
    # draft | queued | publishing | published | failed
    publish_state: str = Field(default="draft", max_length=16)
    published_hash: str | None = Field(default=None, max_length=64)
    published_at: datetime | None = None
    last_publish_error: str | None = Field(default=None, max_length=2000)

    @property
    def markdown(self) -> str:
        return self.edited_markdown if self.edited_markdown is not None else self.generated_markdown


class ChecklistTemplate(SQLModel, table=True):
    """One version of an app's checklist for a release kind; edits make a new version."""

    __tablename__ = "checklist_template"
    __table_args__ = (
        UniqueConstraint("app_id", "kind", "version", name="uq_checklist_template_version"),
    )

    id: int | None = Field(default=None, primary_key=True)
    app_id: int = Field(foreign_key="app.id", index=True)
    kind: str = Field(max_length=16)
    version: int = 1
    created_by: str = Field(max_length=254)
    created_at: datetime = Field(default_factory=utcnow)


class ChecklistItemFields(SQLModel):
    """What a checklist item says, in a template and in the release it was copied to."""

    position: int
    title: str = Field(max_length=300)
    help: str = Field(default="", max_length=2000)
    owner_role: str = Field(max_length=32)
    required: bool = True
    mode: str = Field(default="manual", max_length=16)
    rule: str | None = Field(default=None, max_length=32)


class ChecklistTemplateItem(ChecklistItemFields, table=True):
    __tablename__ = "checklist_template_item"

    id: int | None = Field(default=None, primary_key=True)
    template_id: int = Field(foreign_key="checklist_template.id", index=True)


class ReleaseItem(ChecklistItemFields, table=True):
    """A checklist item of one release, copied from the template it was created with."""

    __tablename__ = "release_item"

    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(foreign_key="release.id", index=True)


class SignOff(SQLModel, table=True):
    """Append-only: an item's status is derived from its latest sign-off (or override)."""

    __tablename__ = "sign_off"
    __table_args__ = (Index("ix_sign_off_item_at", "item_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="release_item.id")
    release_id: int = Field(foreign_key="release.id", index=True)
    user_id: int = Field(foreign_key="user_account.id")
    user_email: str = Field(max_length=254)
    role: str = Field(max_length=32)  # the signer's role at the time
    decision: str = Field(max_length=16)
    comment: str = Field(default="", max_length=2000)
    override: bool = False  # an admin's override of a blocking item
    at: datetime = Field(default_factory=utcnow)


class MeetingRecord(SQLModel, table=True):
    """The per-release meeting record from before weekly meetings (``service.meetings``).

    Migration 0007 copied every row into the weekly meetings; the older API still writes
    one next to its weekly decision while processes that read this table may run. A later
    release drops it."""

    __tablename__ = "meeting_record"

    id: int | None = Field(default=None, primary_key=True)
    release_id: int = Field(foreign_key="release.id", index=True)
    held_on: date
    attendees: str = Field(max_length=2000)
    decision: str = Field(max_length=16)  # go | no_go | postponed
    minutes: str = Field(default="", sa_column=Column(Text, nullable=False))
    recorded_by: str = Field(max_length=254)
    at: datetime = Field(default_factory=utcnow)
