"""Fixtures: the service pointed at a local Notion fake, releases with notes, a clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from flask import Flask, render_template_string
from sqlmodel import Session

from service.auth import login_required
from service.jobs.models import Job
from service.models import utcnow
from service.publishing.views import publish_panel
from service.releases import lifecycle
from service.releases.models import App, Release, ReleaseNote
from service.settings import Settings
from tests.fakes import notion_fixtures
from tests.fakes.notion_fake import NotionFake
from tests.fakes.notion_fixtures import fake_publisher, instant_limiter

# The shared Notion fixtures, re-exported the way tests/release_notes/conftest.py does.
notion_fake = notion_fixtures.notion_fake
fake_clock = notion_fixtures.fake_clock

NOTE = (
    "# 3.12.0\n\n## Fixes\n\n"
    "- Receipts print the store name again\n- Kitchen tickets keep their order\n"
)
ENGINEER = lifecycle.Actor(name="user:eng@example.com", user_id=None, role="engineer")
MANAGER = lifecycle.Actor(name="user:rm@example.com", user_id=None, role="release_manager")


@pytest.fixture
def settings(settings: Settings, notion_fake: NotionFake) -> Settings:
    """The test settings, with Notion pointed at the fake (schema not initialised yet)."""
    return replace(
        settings,
        notion_token=notion_fake.token,
        notion_database_id=notion_fake.database_id,
        notion_base_url=notion_fake.base_url,
        base_url="https://relgov.example.com",
    )


@pytest.fixture
def app(app: Flask) -> Flask:
    app.extensions["relgov.notion_limiter"] = instant_limiter()
    app.config["RELGOV_NOTION_TIMEOUT"] = 5.0

    # The release page belongs to the releases feature; this shows the partial on its own.
    @login_required
    def partial(release_id: int) -> str:
        from service import db

        release = db.session().get(Release, release_id)
        return render_template_string(
            '{% extends "base.html" %}{% block title %}Release {{ release.version }}{% endblock %}'
            "{% block content %}<h1>Release {{ release.version }}</h1>"
            '{% include "publishing/_release_publish.html" %}{% endblock %}',
            release=release,
            panel=publish_panel(db.session(), release),
        )

    app.add_url_rule("/test/publish-partial/<int:release_id>", "test_partial", partial)
    return app


@pytest.fixture
def notion(notion_fake: NotionFake) -> NotionFake:
    """The fake with the release-notes schema in place."""
    with fake_publisher(notion_fake) as publisher:
        assert publisher.init_schema().ok
    notion_fake.reset_requests()
    return notion_fake


def make_release(
    session: Session,
    *,
    version: str = "3.12.0",
    slug: str = "pos",
    markdown: str = NOTE,
    auto_publish: bool = True,
    with_note: bool = True,
) -> Release:
    from sqlmodel import select

    app = session.exec(select(App).where(App.slug == slug)).first()
    if app is None:
        app = App(slug=slug, name=f"{slug.upper()} register", auto_publish=auto_publish)
        session.add(app)
        session.commit()
    release = Release(app_id=app.id or 0, version=version, created_by="user:ci@example.com")
    session.add(release)
    session.commit()
    if with_note:
        note = ReleaseNote(
            release_id=release.id or 0,
            generated_markdown=markdown,
            commit_count=12,
            breaking_count=1,
        )
        session.add(note)
        session.commit()
    return release


def approve(session: Session, release: Release) -> Release:
    lifecycle.transition(session, release, "submit", actor=ENGINEER)
    lifecycle.transition(session, release, "approve", actor=MANAGER)
    session.commit()
    return release


def note_of(session: Session, release: Release) -> ReleaseNote:
    from sqlmodel import select

    session.expire_all()
    note = session.exec(select(ReleaseNote).where(ReleaseNote.release_id == release.id)).one()
    return note


def jobs_of(session: Session, release: Release | None = None) -> list[Job]:
    from sqlmodel import select

    session.expire_all()
    stmt = select(Job).order_by(Job.id)  # type: ignore[arg-type]
    if release is not None:
        stmt = stmt.where(Job.key == f"release:{release.id}")
    return list(session.exec(stmt).all())


def later(seconds: float = 0, base: datetime | None = None) -> datetime:
    return (base or utcnow()) + timedelta(seconds=seconds)


@pytest.fixture
def release(session: Session) -> Iterator[Release]:
    yield make_release(session)
