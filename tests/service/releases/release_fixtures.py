"""Apps with a real git repository and a checklist, for the release tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from sqlmodel import Session

from service.models import User
from service.releases import services
from service.releases.lifecycle import transition
from service.releases.models import App, ChecklistTemplate, ChecklistTemplateItem, Release
from tests.builders import make_user
from tests.release_notes.git_repo_builder import GitRepo

ITEMS = [
    ("Notes generated", "engineer", True, "automatic", "notes_generated"),
    ("Regression tests pass", "qa", True, "manual", None),
    ("Rollback plan written", "engineer", True, "manual", None),
    ("Support briefed", "support", False, "manual", None),
]


def build_repo(path: Path) -> GitRepo:
    repo = GitRepo(path)
    repo.commit("feat(order): split bills (#10)")
    repo.tag("v1.0.0")
    repo.commit("fix(payment): round tips correctly (#11)")
    repo.commit("feat(menu): <script>alert('xss')</script> sold-out badge (#12)")
    repo.commit('docs: <img src=x onerror="alert(1)"> in the manual')
    repo.tag("v1.1.0")
    return repo


def make_app_with_checklist(session: Session, repo_path: Path, slug: str = "pos") -> App:
    app = App(slug=slug, name=slug.upper(), repo_url=str(repo_path), area_map={"order": "Ordering"})
    session.add(app)
    session.flush()
    for kind in ("weekly", "hotfix"):
        template = ChecklistTemplate(app_id=app.id or 0, kind=kind, version=1, created_by="test")
        session.add(template)
        session.flush()
        for position, (title, role, required, mode, rule) in enumerate(ITEMS, start=1):
            session.add(
                ChecklistTemplateItem(
                    template_id=template.id or 0,
                    position=position,
                    title=title,
                    owner_role=role,
                    required=required,
                    mode=mode,
                    rule=rule,
                )
            )
    session.commit()
    return app


def registered_release(
    app: Flask, session: Session, pos: App, by: User, *, submit: bool = False
) -> Release:
    """``pos`` 1.1.0 (git ref v1.1.0) registered by ``by`` (notes and checklist generated),
    and submitted by them when ``submit``."""
    with app.app_context():
        release, created = services.register_release(
            session, app=pos, version="1.1.0", git_ref="v1.1.0", actor=services.actor_for(by)
        )
        assert created
        if submit:
            transition(session, release, "submit", actor=services.actor_for(by))
        session.commit()
    return release


@pytest.fixture
def git_repo(tmp_path: Path) -> GitRepo:
    return build_repo(tmp_path / "pos-repo")


@pytest.fixture
def pos(session: Session, git_repo: GitRepo) -> App:
    return make_app_with_checklist(session, git_repo.path)


@pytest.fixture
def people(session: Session) -> dict[str, User]:
    return {
        role: make_user(session, email=f"{role}@example.com", role=role)
        for role in ("release_manager", "engineer", "qa", "support", "viewer")
    } | {"rm2": make_user(session, email="rm2@example.com", role="release_manager")}
