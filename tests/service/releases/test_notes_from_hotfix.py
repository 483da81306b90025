"""A release's notes start at the release stores upgrade from, even a hotfix made on its own
branch and released after this release was registered: its fix is "already in" it."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from sqlmodel import Session, select

from service.models import AuditEvent, User
from service.releases import notes, services
from service.releases.models import App, Release
from tests.builders import run_jobs
from tests.release_notes.git_repo_builder import GitRepo
from tests.service.releases.release_fixtures import make_app_with_checklist


def _hotfix_repo(path: Path) -> GitRepo:
    """v1.0.0 → v1.0.1 on hotfix/1.0.x (a fix picked with -x) → v1.1.0 on main."""
    r = GitRepo(path)
    r.commit("Initial commit", files={"kds.py": "a\n"})
    r.tag("v1.0.0", annotated=True)
    fix = r.commit("fix(kds): reprint tickets once (#11)", files={"kds.py": "b\n"})
    r.commit("feat(order): tips (#12)", files={"order.py": "tips\n"})
    r.tag("v1.1.0", annotated=True)
    r.branch("hotfix/1.0.x", "v1.0.0")
    r.cherry_pick(fix)
    r.tag("v1.0.1", annotated=True)
    r.checkout("main")
    return r


def _register(app: Flask, session: Session, pos_app: App, version: str, by: User) -> Release:
    with app.app_context():
        release, created = services.register_release(
            session,
            app=pos_app,
            version=version,
            git_ref=f"v{version}",
            kind="hotfix" if version == "1.0.1" else "weekly",
            actor=services.actor_for(by),
        )
        assert created
        session.commit()
    return release


def _released(session: Session, release: Release) -> None:
    release.state = "released"
    session.add(release)
    session.commit()


def test_a_hotfix_released_after_registration_is_where_the_notes_start(
    app: Flask, session: Session, admin: User, tmp_path: Path
) -> None:
    repo = _hotfix_repo(tmp_path / "pos-repo")
    pos = make_app_with_checklist(session, repo.path)
    _released(session, _register(app, session, pos, "1.0.0", admin))
    minor = _register(app, session, pos, "1.1.0", admin)
    assert minor.from_ref == "v1.0.0"
    assert {job.state for job in run_jobs(app)} == {"succeeded"}
    first = notes.note_for(session, minor)
    assert first is not None and first.data is not None
    assert sorted(i["subject"] for i in first.data["shown"]) == ["reprint tickets once", "tips"]
    hotfix = _register(app, session, pos, "1.0.1", admin)
    assert hotfix.from_ref == "v1.0.0"
    _released(session, hotfix)
    assert {job.state for job in run_jobs(app)} == {"succeeded"}

    with app.app_context():
        notes.queue_generation(session, minor, actor=admin.email)
        session.commit()
    assert [job.state for job in run_jobs(app)] == ["succeeded"]
    session.expire_all()
    # Stores upgrade to 1.1.0 from the hotfix, not from 1.0.0: the range is v1.0.1..v1.1.0
    # (v1.0.1 is not an ancestor of v1.1.0) and the fix is already in v1.0.1.
    assert minor.from_ref == "v1.0.1"
    note = notes.note_for(session, minor)
    assert note is not None and note.data is not None
    assert note.data["counts"]["already_shipped"] == 1
    assert [i["subject"] for i in note.data["shown"]] == ["tips"]
    assert "## Already in v1.0.1" in (note.generated_markdown or "")
    events = session.exec(
        select(AuditEvent).where(
            AuditEvent.action == "notes.generate", AuditEvent.subject_id == str(minor.id)
        )
    ).all()
    moves = [((e.before or {}).get("from_ref"), (e.after or {}).get("from_ref")) for e in events]
    assert moves == [("v1.0.0", "v1.0.0"), ("v1.0.0", "v1.0.1")]
