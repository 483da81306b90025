"""Release notes are read from git by the job worker, never inside a request's transaction:
a slow or hanging remote neither delays registration nor holds up anyone else's writes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select

from service import jobs
from service.models import AuditEvent, User
from service.releases import services
from service.releases.lifecycle import Actor
from service.releases.models import App, Release
from service.settings import Settings
from tests.builders import api_headers, bearer, login, make_token, post_form, run_jobs
from tests.service.adoption.conftest import make_fleet
from tests.service.releases.release_fixtures import build_repo, make_app_with_checklist
from tests.service.releases.remotes import HangingRemote

DEADLINE = 60.0  # seconds: the tests' own limit, far above any git timeout they set
T = TypeVar("T")


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """Loopback remotes allowed; git given ``request.param`` seconds (2 unless told)."""
    return replace(
        settings,
        repo_allowed_hosts=("127.0.0.1",),
        git_timeout_seconds=float(getattr(request, "param", 2)),
    )


@pytest.fixture
def ci(session: Session, admin: User) -> dict[str, str]:
    return api_headers(session, creator=admin, scopes=["releases:write", "read"])


def _in_thread(fn: Callable[[], T]) -> T:
    """``fn()`` in a thread, failing the test if it has not returned by the deadline."""
    result: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(DEADLINE)
    assert not thread.is_alive(), f"{fn} did not answer within {DEADLINE} s"
    if errors:
        raise errors[0]
    return result[0]


def _hanging_app(session: Session, remote: HangingRemote, tmp_path: Path) -> App:
    kds = make_app_with_checklist(session, tmp_path, slug="kds")
    kds.repo_url = remote.url("kds.git")
    session.add(kds)
    session.commit()
    return kds


def _register(client: FlaskClient, headers: dict[str, str], app: str, version: str) -> Any:
    body = {"app": app, "version": version, "git_ref": f"v{version}"}
    return client.post("/api/v1/releases", json=body, headers=headers)


def _registered_earlier(app: Flask, session: Session, slug: str, version: str) -> int:
    """A release registered before its remote began to hang (or its location to be refused):
    registering checks the ref with git now, so these start from the service itself."""
    target = session.exec(select(App).where(App.slug == slug)).one()
    with app.app_context():
        release, _ = services.register_release(
            session, app=target, version=version, git_ref=f"v{version}", actor=Actor("token:ci")
        )
        session.commit()
    assert release.id is not None
    return release.id


def _beat() -> dict[str, object]:
    return {
        "device_id": "S001-pos-0",
        "store_id": "S001",
        "app": "pos",
        "version": "1.1.0",
        "device_kind": "pos",
        "sent_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
    }


@pytest.mark.parametrize("settings", [30], indirect=True)
def test_a_hanging_remote_holds_up_no_other_request(
    app: Flask,
    client: FlaskClient,
    session: Session,
    ci: dict[str, str],
    admin: User,
    pos: App,
    people: dict[str, User],
    tmp_path: Path,
) -> None:
    """While the worker's clone hangs (the remote holds it until the test lets go), a
    login, a heartbeat and another app's registration are answered as usual."""
    make_fleet(session, stores=2, beta=1)
    heartbeats = bearer(make_token(session, creator=admin, scopes=["heartbeats:write"], name="d"))
    with HangingRemote() as remote:
        _hanging_app(session, remote, tmp_path)
        kds_id = _registered_earlier(app, session, "kds", "1.0.0")
        assert not remote.accepted.is_set()

        ended: list[jobs.Job | None] = []
        worker = threading.Thread(target=lambda: ended.append(jobs.run_once(app)), daemon=True)
        worker.start()
        assert remote.accepted.wait(DEADLINE), "the worker never reached the remote"

        answers: dict[str, int] = {}

        def log_in() -> None:
            answers["login"] = login(app.test_client(), people["engineer"].email).status_code

        def heartbeat() -> None:
            sent = app.test_client().post("/api/v1/heartbeats", json=_beat(), headers=heartbeats)
            answers["heartbeat"] = sent.status_code

        def register_pos() -> None:
            answers["register"] = _register(app.test_client(), ci, "pos", "1.1.0").status_code

        threads = [threading.Thread(target=f) for f in (log_in, heartbeat, register_pos)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE)
        assert answers == {"login": 302, "heartbeat": 200, "register": 201}
        # All of that happened while git was still waiting on the remote.
        assert remote.hanging and worker.is_alive()
        remote.release()  # the remote hangs up: git fails at once
        worker.join(DEADLINE)
    assert not worker.is_alive()
    job = ended[0]
    assert job is not None and job.state == "failed"
    assert "cannot clone http://127.0.0.1:" in (job.last_error or "")
    kds_release = client.get(f"/api/v1/releases/{kds_id}", headers=ci).json
    assert kds_release["notes_state"] == "failed"
    assert "cannot clone" in kds_release["notes_error"]
    # The other app's notes were queued meanwhile and are generated as usual.
    assert [j.state for j in run_jobs(app)] == ["succeeded"]
    pos_release = session.exec(select(Release).where(Release.app_id == pos.id)).one()
    detail = client.get(f"/api/v1/releases/{pos_release.id}", headers=ci).json
    assert detail["notes_state"] == "generated" and detail["commit_count"] == 3


def test_a_remote_that_never_answers_fails_the_notes_after_the_git_timeout(
    app: Flask,
    client: FlaskClient,
    session: Session,
    ci: dict[str, str],
    people: dict[str, User],
    tmp_path: Path,
) -> None:
    """A release registered before its remote stopped answering: the worker gives git 2 s,
    then the release shows why its notes are missing and offers to try again."""
    with HangingRemote() as remote:
        _hanging_app(session, remote, tmp_path)
        kds_id = _registered_earlier(app, session, "kds", "1.0.0")
        ended = _in_thread(lambda: run_jobs(app))
        assert remote.accepted.is_set()
    assert [j.state for j in ended] == ["failed"]
    url = f"/api/v1/releases/{kds_id}"
    detail = client.get(url, headers=ci).json
    assert detail["notes_state"] == "failed"
    assert "timed out, git did not finish within 2 s" in detail["notes_error"]
    item = detail["items"][0]
    assert (item["title"], item["status"]) == ("Notes generated", "failed")
    event = session.exec(
        select(AuditEvent).where(AuditEvent.action == "notes.generate_failed")
    ).one()
    assert event.actor.startswith("token:")

    login(client, people["engineer"].email)
    page = f"/releases/{kds_id}"
    html = client.get(page).get_data(as_text=True)
    assert "Notes could not be generated" in html and "timed out" in html
    assert "Try again: regenerate from git" in html


def test_notes_are_pending_until_the_worker_has_run(
    app: Flask,
    client: FlaskClient,
    session: Session,
    ci: dict[str, str],
    pos: App,
    people: dict[str, User],
) -> None:
    """The release page, its checklist and the API say "notes pending"; regenerating (API:
    202) queues the job again."""
    registered = _register(client, ci, "pos", "1.1.0").json
    login(client, people["engineer"].email)
    page = f"/releases/{registered['id']}"
    html = client.get(page).get_data(as_text=True)
    assert "Notes pending" in html and "notes pending: being generated from git" in html
    assert "No notes yet" not in html

    run_jobs(app)
    html = client.get(page).get_data(as_text=True)
    assert "Notes pending" not in html and "split bills" not in html  # v1.0.0..v1.1.0 only
    assert "round tips correctly" in html

    again = client.post(f"/api/v1/releases/{registered['id']}/notes/regenerate", headers=ci)
    assert again.status_code == 202 and again.json["notes_state"] == "pending"
    assert again.json["commit_count"] == 3  # the notes so far stay readable meanwhile
    assert [j.state for j in run_jobs(app)] == ["succeeded"]
    assert client.get(f"/api/v1/releases/{registered['id']}", headers=ci).json["notes_state"] == (
        "generated"
    )

    post_form(client, page + "/notes/regenerate", {}, page=page + "/notes")
    assert "Notes pending" in client.get(page + "/notes").get_data(as_text=True)


def test_a_refused_repository_fails_the_notes_and_names_repo_url(
    app: Flask,
    client: FlaskClient,
    session: Session,
    ci: dict[str, str],
    pos: App,
    tmp_path: Path,
) -> None:
    """An app saved with a location the rules now refuse (outside RELGOV_REPO_ROOT) is not
    read: the notes fail with the reason."""
    outside = build_repo(tmp_path.parent / f"{tmp_path.name}-outside")
    release_id = _registered_earlier(app, session, "pos", "1.1.0")
    pos.repo_url = str(outside.path)
    session.add(pos)
    session.commit()
    assert [j.state for j in run_jobs(app)] == ["failed"]
    detail = client.get(f"/api/v1/releases/{release_id}", headers=ci).json
    assert "repo_url is refused" in detail["notes_error"]
    assert "not under RELGOV_REPO_ROOT" in detail["notes_error"]
