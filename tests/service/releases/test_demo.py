"""The demo seeder: real git history, releases in every state, quick enough for make run."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from sqlmodel import Session, select

from release_notes.generate import generate_for_range
from service.demo import seed_people
from service.releases import demo
from service.releases.demo_repo import build_demo_repo
from service.releases.lifecycle import TRANSITIONS
from service.releases.models import App, Release, ReleaseNote, TrainSkip


def test_demo_repo_has_weekly_tags_a_hotfix_a_revert_and_trailers(tmp_path: Path) -> None:
    repo = build_demo_repo(tmp_path / "pos", "pos")
    names = [t.name for t in repo.tags]
    assert names[:4] == ["v3.10.0", "v3.11.0", "v3.12.0", "v3.12.1"]
    assert names[-1] == "v3.17.0"
    assert [t.at for t in repo.tags if t.kind == "weekly"] == sorted(
        t.at for t in repo.tags if t.kind == "weekly"
    )
    notes = generate_for_range(repo.path, "v3.11.0", "v3.12.0")
    assert notes.breaking and notes.pr_count >= 4
    hotfix = generate_for_range(repo.path, "v3.12.0", "v3.12.1")
    assert "tip is zero" in str(hotfix.sections)
    reverted = generate_for_range(repo.path, "v3.14.0", "v3.15.0")
    assert "allergens" in str(reverted.sections) + str(reverted.filtered)


def test_seed_makes_releases_in_every_state(app: Flask, session: Session, tmp_path: Path) -> None:
    with app.app_context():
        seed_people(session)
        session.commit()
        lines = demo.seed(session, repos=tmp_path / "demo-repos")
        session.commit()
    assert lines[0] == "demo releases:"
    states = {r.state for r in session.exec(select(Release)).all()}
    all_states = {target for _, target in TRANSITIONS.values() if target} | {"draft"}
    assert states == all_states
    assert {a.slug for a in session.exec(select(App)).all()} == {"pos", "handy", "kds"}
    for release in session.exec(select(Release).where(Release.state == "released")).all():
        assert release.beta_at and release.rollout_started_at and release.released_at
        assert release.beta_at < release.rollout_started_at < release.released_at
    notes = session.exec(select(ReleaseNote)).all()
    assert notes and all(n.generation_error is None for n in notes), [
        n.generation_error for n in notes
    ]
    assert any(n.edited_markdown for n in notes)
    assert session.exec(select(TrainSkip)).first() is not None
    with app.app_context():
        assert demo.seed(session) == ["releases: apps already exist, nothing seeded"]


def test_demo_pages_render(app: Flask, session: Session, tmp_path: Path, client) -> None:  # type: ignore[no-untyped-def]
    from tests.builders import login

    with app.app_context():
        seed_people(session)
        session.commit()
        demo.seed(session, repos=tmp_path / "demo-repos")
        session.commit()
    assert login(client, "support@example.com", "demo-password").status_code == 302
    for path in ("/apps", "/apps/pos", "/apps/pos/checklists/weekly", "/notes"):
        assert client.get(path).status_code == 200, path
    for release in session.exec(select(Release)).all():
        assert client.get(f"/releases/{release.id}/notes").status_code == 200
