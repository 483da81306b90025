"""Fixtures of the search tests: an app whose git history speaks Japanese and English, its
releases registered through the real services (so the reactions index them), and a helper
that searches as the pages do."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlmodel import Session

from service.models import User
from service.releases import services
from service.releases.models import App, Release
from service.search import index
from service.search import query as search_query
from tests.builders import make_user, run_jobs
from tests.release_notes.git_repo_builder import GitRepo
from tests.service.releases.release_fixtures import make_app_with_checklist

# (message, tag after it or None)
HISTORY = [
    ("feat(order): first order screen (#1)", "v1.0.0"),
    (
        "feat(order): split a bill evenly between guests (#2)\n\n"
        "Guests at one table pay their own share.\n\n"
        "Release-Note: Tap Split on the bill screen to divide it between 2–8 guests.",
        None,
    ),
    (
        "fix(payment): 割り勘の端数処理を修正 (#3)\n\n"
        "最後の一人に端数が寄っていたため、均等に配分します。\n\n"
        "Release-Note: 割り勘の端数が正しく配分されるようになりました。",
        None,
    ),
    ("fix(printer): receipt printer prints the QR code twice (#4)", None),
    ("test(order): cover split bills with <b>discounts</b> (#5)", "v1.1.0"),
    (
        "feat(payment): 会計画面に軽減税率の内訳を表示 (#6)\n\n"
        "Release-Note: 会計画面で 8% と 10% の内訳が見られます。",
        None,
    ),
    ("fix(menu): sold-out badge clears at the start of the day (#7)", "v1.2.0"),
]


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    built = GitRepo(tmp_path / "pos-repo")
    for message, tag in HISTORY:
        built.commit(message)
        if tag:
            built.tag(tag)
    return built


@pytest.fixture
def pos(session: Session, repo: GitRepo) -> App:
    app = make_app_with_checklist(session, repo.path)
    app.area_map = {"order": "Ordering", "payment": "Payments", "printer": "Printing"}
    session.add(app)
    session.commit()
    return app


@pytest.fixture
def team(session: Session) -> dict[str, User]:
    return {
        role: make_user(session, email=f"{role}@example.com", role=role, name=role.title())
        for role in ("release_manager", "engineer", "support", "viewer")
    }


def register(
    app: Flask, session: Session, pos: App, by: User, version: str, **fields: Any
) -> Release:
    """Register ``pos`` ``version`` (git tag v<version>) as CI would; the job worker then
    generates its notes, which indexes them; ``fields`` are then set on the release (a
    state, a date)."""
    with app.app_context():
        release, created = services.register_release(
            session, app=pos, version=version, git_ref=f"v{version}", actor=services.actor_for(by)
        )
        assert created
        session.commit()
    done = run_jobs(app)
    assert [(j.kind, j.state) for j in done] == [("release_notes", "succeeded")], done
    session.refresh(release)
    with app.app_context():
        for name, value in fields.items():
            setattr(release, name, value)
        session.add(release)
        session.commit()
    return release


@pytest.fixture
def releases(app: Flask, session: Session, pos: App, team: dict[str, User]) -> dict[str, Release]:
    """1.1.0 and 1.2.0 of ``pos``, registered (notes generated and indexed), released."""
    found = {}
    for n, version in enumerate(("1.1.0", "1.2.0")):
        found[version] = register(
            app,
            session,
            pos,
            team["engineer"],
            version,
            state="released",
            created_at=datetime(2026, 3, 4 + 7 * n, 5, tzinfo=UTC),
        )
    # The dates set after registering: index them again, as `relgov search reindex` does.
    with app.app_context():
        index.rebuild(session, index.sources_of(app).values())
        session.commit()
    return found


Search = Callable[..., search_query.Results]


@pytest.fixture
def search(app: Flask, session: Session) -> Search:
    """Search as the pages do: ``search("割り勘", app="pos", kind="fix")``."""

    def run(words: str, *, limit: int = 20, offset: int = 0, **filters: Any) -> Any:
        with app.test_request_context():
            return search_query.search(
                session,
                search_query.parse(words),
                search_query.parse_filters(session, **filters),
                index.sources_of(app),
                limit=limit,
                offset=offset,
            )

    return run


def titles(results: search_query.Results) -> list[str]:
    return [hit.doc.title or hit.doc.body for hit in results.hits]
