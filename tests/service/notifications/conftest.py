"""Fixtures: the service pointed at a local Slack fake, releases with checklists, people."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from flask import Flask
from sqlmodel import Session, col, select

from service import jobs
from service.jobs.models import Job
from service.models import utcnow
from service.notifications.models import AppChannel, Notification
from service.releases import lifecycle
from service.releases.models import App, Release
from service.settings import Settings
from tests import builders
from tests.fakes.slack_fake import SlackFake

MANAGER = lifecycle.Actor(name="user:rm@example.com", user_id=None, role="release_manager")
ENGINEER = lifecycle.Actor(name="user:eng@example.com", user_id=None, role="engineer")


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


@pytest.fixture
def settings(settings: Settings, slack: SlackFake) -> Settings:
    """The test settings with the bot token pointed at the fake (see ``webhook_only``)."""
    return replace(
        settings,
        slack_bot_token=slack.token,
        slack_base_url=slack.base_url,
        slack_timeout_seconds=5.0,
        slack_default_channel="#releases",
        slack_meetings_channel="#release-meeting",
        base_url="https://relgov.example.com",
        # The weekly meeting: Wednesdays 14:00 in Tokyo (05:00 UTC).
        meeting_time="Wed 14:00",
        meeting_timezone="Asia/Tokyo",
    )


@pytest.fixture(autouse=True)
def _in_app(request: pytest.FixtureRequest, app: Flask) -> Iterator[None]:
    """Events are recorded as a request or a job of ``app`` records them (its settings).
    Not for tests with a test client: its requests push their own context (and ``g``)."""
    if {"client", "admin_client"} & set(request.fixturenames):
        yield
        return
    with app.app_context():
        yield


@pytest.fixture
def people(session: Session) -> dict[str, object]:
    return {
        "rm": builders.make_user(
            session, email="rm@example.com", role="release_manager", name="Rita Manager"
        ),
        "eng": builders.make_user(
            session, email="eng@example.com", role="engineer", name="Eli Eng"
        ),
        "qa": builders.make_user(session, email="qa@example.com", role="qa", name="Quinn QA"),
    }


def make_app(session: Session, slug: str = "pos", channel: str | None = None, **fields) -> App:
    app = session.exec(select(App).where(App.slug == slug)).first()
    if app is None:
        app = App(slug=slug, name=fields.pop("name", "POS register"), **fields)
        session.add(app)
        session.commit()
    if channel is not None:
        session.merge(AppChannel(app_id=app.id, channel=channel, updated_by="test"))
        session.commit()
    return app


def make_release(session: Session, app: App, version: str = "3.12.0", **fields) -> Release:
    release = Release(app_id=app.id, version=version, created_by="user:ci@example.com", **fields)
    session.add(release)
    session.commit()
    return release


def move(session: Session, release: Release, *actions: str, reason: str = "") -> Release:
    """Take the moves with the guards of the wired app (approval guards bypassed by state)."""
    for action in actions:
        actor = ENGINEER if action == "submit" else MANAGER
        lifecycle.transition(session, release, action, actor=actor, reason=reason)
    session.commit()
    return release


def messages(session: Session) -> list[Notification]:
    session.expire_all()
    return list(session.exec(select(Notification).order_by(col(Notification.id))).all())


def send_jobs(session: Session) -> list[Job]:
    session.expire_all()
    return list(
        session.exec(select(Job).where(Job.kind == "slack_send").order_by(col(Job.id))).all()
    )


def later(seconds: float = 0, base: datetime | None = None) -> datetime:
    return (base or utcnow()) + timedelta(seconds=seconds)


def run_due(app: Flask, now: datetime | None = None) -> list[Job]:
    done = []
    while (job := jobs.run_once(app, now=now)) is not None:
        done.append(job)
    return done
