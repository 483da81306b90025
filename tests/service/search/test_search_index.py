"""The index follows the text: notes generated and edited, incidents recorded and changed,
meetings recorded, each in the transaction of the change; a rebuild gives the same rows."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from flask import Flask
from sqlalchemy import text
from sqlmodel import Session, col, select

from service.incidents import services as incidents
from service.meetings import services as meetings
from service.meetings.models import Meeting
from service.meetings.weeks import week_of
from service.models import User
from service.releases.lifecycle import Actor
from service.releases.models import App, Release
from service.releases.notes import note_for, save_note_edit
from service.search import index, sources
from service.search import query as search_query
from service.search.models import PG_INDEX_DDL, SearchDoc
from tests.service.search.conftest import Search, register


def _docs(session: Session) -> list[tuple[str, int, int, str, str, str, str]]:
    rows = session.exec(
        select(SearchDoc).order_by(
            col(SearchDoc.source), col(SearchDoc.owner_key), col(SearchDoc.position)
        )
    ).all()
    return [(d.source, d.owner_key, d.position, d.kind, d.section, d.text, d.grams) for d in rows]


def _fts_ok(session: Session) -> None:
    """SQLite: the FTS5 tables hold exactly what search_doc holds (integrity-check with the
    content table compared)."""
    if session.connection().dialect.name != "sqlite":
        return
    for table in ("search_fts", "search_gram_fts"):
        session.connection().execute(
            text(f"INSERT INTO {table}({table}, rank) VALUES ('integrity-check', 1)")
        )


def test_generated_notes_are_indexed_as_they_are_generated(
    app: Flask, session: Session, pos: App, team: dict[str, User], search: Search
) -> None:
    release = register(app, session, pos, team["engineer"], "1.1.0")
    kinds = {(d.kind, d.title) for d in session.exec(select(SearchDoc)).all()}
    assert ("feature", "split a bill evenly between guests") in kinds
    assert ("fix", "割り勘の端数処理を修正") in kinds
    assert ("store", "割り勘の端数が正しく配分されるようになりました。") in kinds
    assert ("change", "cover split bills with <b>discounts</b>") in kinds
    found = search("割り勘")
    assert [h.doc.kind for h in found.hits] == ["store", "fix"]
    assert found.hits[0].url.startswith(f"/releases/{release.id}/notes#:~:text=")
    _fts_ok(session)


def test_an_edit_is_indexed_in_its_transaction(
    app: Flask, session: Session, pos: App, team: dict[str, User], search: Search
) -> None:
    release = register(app, session, pos, team["engineer"], "1.1.0")
    # The app's own engine (the test's session commits every statement on SQLite).
    with app.test_request_context(method="POST"), Session(app.extensions["relgov.engine"]) as tx:

        def find(words: str) -> list[str]:
            parsed = search_query.parse(words)
            found = search_query.search(tx, parsed, search_query.Filters(), index.sources_of(app))
            return [h.doc.title or h.doc.body for h in found.hits]

        note = note_for(tx, tx.get(Release, release.id) or release)
        assert note is not None
        edited = note.generated_markdown.replace(
            "## For stores\n",
            "## For stores\n\n> **店舗スタッフの方へ:** 会計画面のボタン配置が変わります。\n",
        ).replace("Tap Split on the bill screen", "Tap Split on the check screen")
        save_note_edit(
            tx,
            release=tx.get(Release, release.id) or release,
            app=tx.get(App, pos.id) or pos,
            note=note,
            text=edited,
            discard=False,
            actor=Actor(name="user:support@example.com", role="support"),
        )
        # Not committed: the transaction of the edit already finds it ...
        assert find("check screen") == [
            "Tap Split on the check screen to divide it between 2–8 guests."
        ]
        assert find("ボタン配置") == ["店舗スタッフの方へ: 会計画面のボタン配置が変わります。"]
        assert find("bill screen") == []  # the generated store note is replaced
        tx.rollback()
    # ... and once it is rolled back, nothing of it is left in the index.
    assert search("check screen").total == 0
    assert search("bill screen").total == 1
    _fts_ok(session)


def test_edited_text_beyond_the_commits_is_indexed_once(
    app: Flask, session: Session, pos: App, team: dict[str, User], search: Search
) -> None:
    release = register(app, session, pos, team["engineer"], "1.1.0")
    note = note_for(session, release)
    assert note is not None
    edited = note.generated_markdown.replace(
        "## Fixes\n", "## Fixes\n\nPrinting: the QR code on receipts is printed once again.\n"
    )
    with app.app_context():
        save_note_edit(
            session,
            release=release,
            app=pos,
            note=note,
            text=edited,
            discard=False,
            actor=Actor(name="user:support@example.com", role="support"),
        )
        session.commit()
    found = search("printed once again")
    assert [(h.doc.kind, h.doc.section) for h in found.hits] == [("fix", "Edited notes · Fixes")]
    # The commit lines kept as generated are there once, as their commits.
    assert search("receipt printer prints").total == 1


def test_incidents_are_indexed_when_recorded_and_when_changed(
    app: Flask, session: Session, releases: dict[str, Release], pos: App, search: Search
) -> None:
    with app.app_context():
        incident = incidents.record_incident(
            session,
            app=pos,
            title="割り勘で会計が止まる",
            impact=5,
            store_count=3,
            started_at=datetime(2026, 3, 20, 12, tzinfo=UTC),
            actor="user:support@example.com",
            release=releases["1.1.0"],
            thresholds=incidents.scope_thresholds(),
        )
        session.commit()
    hit = search("会計 止まる", kind="incident").hits[0]
    assert (hit.doc.version, hit.doc.on_date, hit.url) == (
        "1.1.0",
        date(2026, 3, 20),
        f"/incidents/{incident.id}",
    )
    assert "open" in hit.doc.section
    with app.app_context():
        incidents.update_incident(
            session,
            incident,
            actor="user:support@example.com",
            changes={
                "title": "割り勘でレシートが出ない",
                "resolved_at": datetime(2026, 3, 20, 14, tzinfo=UTC),
            },
        )
        session.commit()
    assert search("会計 止まる").total == 0
    hit = search("レシート", kind="incident").hits[0]
    assert "resolved" in hit.doc.section


def _minutes(app: Flask, session: Session, user: User, day: date, text: str) -> Meeting:
    """Open the meeting of ``day``'s week and save its minutes, as the meeting page does."""
    with app.app_context():
        meeting = meetings.open_meeting(session, week=week_of(day), user=user)
        meetings.save_minutes(
            session, meeting=meeting, user=user, minutes=text, revision=meeting.minutes_revision
        )
        session.commit()
    return meeting


def test_weekly_meeting_minutes_are_indexed_when_saved(
    app: Flask,
    session: Session,
    releases: dict[str, Release],
    team: dict[str, User],
    search: Search,
) -> None:
    rm = team["release_manager"]
    meeting = _minutes(
        app, session, rm, date(2026, 3, 12), "pos 1.2.0: 会計まわりの回帰テストは問題なし。"
    )
    hit = search("回帰テスト").hits[0]
    assert (hit.doc.kind, hit.doc.section, hit.doc.on_date, hit.doc.app_id) == (
        "minutes",
        f"Meeting {meeting.week}",
        meeting.week_start,
        None,
    )
    assert hit.url.startswith(f"/meetings/{meeting.week}#:~:text=")
    # Saved again: the old text is gone from the index, the new one is there.
    with app.app_context():
        meetings.save_minutes(
            session,
            meeting=meeting,
            user=rm,
            minutes="## Decisions\n\nPrinter fix verified on TM-m30III.",
            revision=meeting.minutes_revision,
        )
        session.commit()
    assert search("回帰テスト").total == 0
    hit = search("printer fix", kind="minutes").hits[0]
    assert hit.doc.section == f"Meeting {meeting.week} · Decisions"


def test_refreshing_and_rebuilding_give_the_same_rows(
    app: Flask, session: Session, pos: App, team: dict[str, User], releases: dict[str, Release]
) -> None:
    with app.app_context():
        incidents.record_incident(
            session,
            app=pos,
            title="Receipt printer stops",
            impact=3,
            store_count=2,
            started_at=datetime(2026, 3, 21, tzinfo=UTC),
            actor="test",
            thresholds=incidents.scope_thresholds(),
        )
        session.commit()
    _minutes(app, session, team["release_manager"], date(2026, 3, 5), "Go.\n\nPrinter checked.")
    with app.app_context():
        refreshed = _docs(session)
        rebuilt = index.rebuild(session, index.sources_of(app).values())
        session.commit()
    assert _docs(session) == refreshed
    assert rebuilt.owners == {"release": 2, "incident": 1, "minutes": 1}
    _fts_ok(session)


def test_a_release_without_notes_any_more_loses_its_documents(
    app: Flask, session: Session, releases: dict[str, Release]
) -> None:
    release = releases["1.1.0"]
    note = note_for(session, release)
    session.delete(note)
    session.flush()
    assert index.refresh(session, sources.RELEASE_NOTES, release.id or 0) == 0
    session.commit()
    left = session.exec(select(SearchDoc.release_id).where(SearchDoc.source == "release")).all()
    assert set(left) == {releases["1.2.0"].id}
    _fts_ok(session)


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        (
            "# Release 1.0\n\n## For stores\n\n### Payments\n\n- Pay by QR (#1, `abc1234`)\n",
            [(("For stores", "Payments"), "Pay by QR (#1, abc1234)")],
        ),
        (
            "## Fixes\n\n- one\n  - nested\n- two\n\nA paragraph.\n\n```\ncode\n```\n",
            [
                (("Fixes",), "one nested"),
                (("Fixes",), "two"),
                (("Fixes",), "A paragraph."),
                (("Fixes",), "code"),
            ],
        ),
    ],
)
def test_note_blocks(markdown: str, expected: list[tuple[tuple[str, ...], str]]) -> None:
    assert [(b.headings, b.text) for b in sources.note_blocks(markdown)] == expected


def test_a_rebuild_makes_the_postgresql_indexes_of_the_migration(
    app: Flask, session: Session
) -> None:
    """A rebuild drops the GIN indexes and makes them again from ``PG_INDEX_DDL``: the same
    definitions as migration 0006 made."""
    if session.connection().dialect.name != "postgresql":
        pytest.skip("PostgreSQL's indexes (RELGOV_TEST_DATABASE_URL)")

    def definitions() -> dict[str, str]:
        rows = session.connection().execute(
            text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'search_doc'")
        )
        return dict(rows.all())

    migrated = definitions()
    assert set(PG_INDEX_DDL) <= set(migrated)
    with app.app_context():
        index.rebuild(session, index.sources_of(app).values())
    assert definitions() == migrated
