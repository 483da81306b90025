# ruff: noqa: F811  (pytest fixtures imported from the release tests are parameters here)
"""A sign-off or an approval is stored whole or not at all: a failure after the first write
(the audit event, a lifecycle listener) leaves no sign-off, no state change, no audit event,
and the person gets a clear error."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlmodel import select

from service import audit
from service.jobs.models import Job
from service.models import AuditEvent
from service.publishing import notion_publish
from service.releases import checklist, lifecycle
from service.releases.models import Release, ReleaseItem, SignOff
from tests.builders import post_form
from tests.service.releases.release_fixtures import git_repo, people, pos  # noqa: F401
from tests.service.releases.test_person_api import person, release  # noqa: F401


class Injected(RuntimeError):
    pass


@pytest.fixture
def app(app):
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: a 500 answer, not a raise
    return app


@pytest.fixture
def audit_fails_after_writing(monkeypatch):
    """audit.record writes a sign-off's event, then the request fails (as a crash would)."""
    real = audit.record

    def record(*args, **kwargs):
        event = real(*args, **kwargs)
        if kwargs.get("action", "").startswith("signoff."):
            raise Injected("injected failure after the first write")
        return event

    monkeypatch.setattr(audit, "record", record)


def _item(session, release, title):
    return session.exec(
        select(ReleaseItem).where(ReleaseItem.release_id == release.id, ReleaseItem.title == title)
    ).one()


def _events(session, prefix):
    session.expire_all()
    return [e for e in session.exec(select(AuditEvent)).all() if e.action.startswith(prefix)]


def test_a_sign_off_that_fails_half_way_stores_nothing(
    client, session, release, audit_fails_after_writing
):
    item = _item(session, release, "Regression tests pass")
    headers = person(client, "qa@example.com")
    url = f"/api/v1/releases/{release.id}/items/{item.id}/sign-offs"
    response = client.post(url, json={"decision": "approve"}, headers=headers)
    assert response.status_code == 500
    error = response.json["error"]
    assert error["code"] == "internal_error" and "nothing was saved" in error["message"]
    assert response.headers["X-Request-ID"] in error["message"]
    assert session.exec(select(SignOff)).all() == []
    assert _events(session, "signoff.") == []

    page = post_form(
        client,
        f"/releases/{release.id}/items/{item.id}/sign",
        {"decision": "approve"},
        page=f"/releases/{release.id}",
    )
    assert page.status_code == 500 and "nothing was saved" in page.get_data(as_text=True)
    assert session.exec(select(SignOff)).all() == []
    assert _events(session, "signoff.") == []


def _sign_all(session, release, people):
    for title, role in [("Regression tests pass", "qa"), ("Rollback plan written", "engineer")]:
        checklist.sign_off(
            session,
            release=release,
            item=_item(session, release, title),
            user=people[role],
            decision="approve",
        )
    session.commit()


def test_an_approval_that_fails_after_the_state_change_stores_nothing(
    client,
    session,
    release,
    people,
    monkeypatch,
):
    _sign_all(session, release, people)
    lock_before = release.lock_version

    def listener(*_args):
        raise Injected("a listener failed after the release moved")

    hooks = lifecycle.hooks()
    monkeypatch.setattr(
        lifecycle, "_installed", replace(hooks, reactions=(*hooks.reactions, listener))
    )
    headers = person(client, "release_manager@example.com")
    response = client.post(
        f"/api/v1/releases/{release.id}/transitions", json={"action": "approve"}, headers=headers
    )
    assert response.status_code == 500 and "nothing was saved" in response.json["error"]["message"]
    session.expire_all()
    stored = session.get(Release, release.id)
    assert stored.state == "in_review" and stored.lock_version == lock_before
    assert stored.approved_by is None
    assert _events(session, "release.approve") == []
    # No publish job was queued (the release's notes job ran when it was registered).
    assert session.exec(select(Job).where(Job.kind == notion_publish.KIND)).all() == []

    page = post_form(
        client,
        f"/releases/{release.id}/transition",
        {"action": "approve", "lock_version": lock_before, "confirm": "yes"},
        page=f"/releases/{release.id}",
    )
    assert page.status_code == 500
    session.expire_all()
    assert session.get(Release, release.id).state == "in_review"
    assert _events(session, "release.approve") == []
