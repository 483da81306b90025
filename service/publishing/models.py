"""What the publisher knows about each release's Notion page, between attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from service.models import utcnow


class NotionPage(SQLModel, table=True):
    """One release's Notion page as last written (``release_notes.notion.PageRecord``).

    ``publish_key`` is the page's "Publish key" property, the marker that finds the page
    even before Notion's search shows its version. ``state`` holds the top-level blocks in
    order (id, fingerprint of the content sent, type, whether it has children), the step
    under way (saved before each request, so the next attempt settles it and goes on from
    there), the hash of the note last published completely, and the time of a create not
    yet confirmed.
    """

    __tablename__ = "notion_page"

    release_id: int = Field(foreign_key="release.id", primary_key=True)
    page_id: str | None = Field(default=None, max_length=64)
    publish_key: str = Field(max_length=64)
    state: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)
