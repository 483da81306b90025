"""Migration 0009: the weekly meeting's recorded messages (``meeting_notification``, 0007)
move into the Slack outbox (``notification``), never sent; downgrade puts them back."""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import command
from sqlmodel import Session, col, select

from service import db, migrate
from service.meetings.models import Meeting
from service.notifications.models import Notification
from service.releases.models import App, Release
from tests.service.meetings.test_migration_and_zones import empty_database_url

OLD = sa.table(
    "meeting_notification",
    sa.column("key", sa.String()),
    sa.column("event", sa.String()),
    sa.column("meeting_id", sa.Integer()),
    sa.column("release_id", sa.Integer()),
    sa.column("channel", sa.String()),
    sa.column("text", sa.Text()),
    sa.column("mentions", sa.JSON()),
    sa.column("payload", sa.JSON()),
    sa.column("at", sa.DateTime()),
    sa.column("state", sa.String()),
    sa.column("error", sa.String()),
)


__all__ = ["empty_database_url"]  # the fixture: a fresh database (PostgreSQL in its run)


def test_0009_moves_the_meetings_messages_into_the_outbox_unsent(empty_database_url: str) -> None:
    engine = db.make_engine(empty_database_url)
    migrate.upgrade(engine, "0008")
    at = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)
    with Session(engine) as session:
        app = App(slug="pos", name="POS register")
        session.add(app)
        session.flush()
        release = Release(app_id=app.id or 0, version="3.10.0", created_by="ci")
        meeting = Meeting(
            week="2026-W48", week_start=date(2026, 11, 23), timezone="Asia/Tokyo",
            opened_by="user:rm@example.com", opened_at=at,
        )  # fmt: skip
        session.add_all([release, meeting])
        session.commit()
        meeting_id, release_id, app_id = meeting.id, release.id, app.id
    with engine.begin() as connection:
        connection.execute(
            OLD.insert(),
            [
                {
                    "key": f"opened:{meeting_id}", "event": "opened", "meeting_id": meeting_id,
                    "release_id": None, "channel": "meetings", "text": ":clipboard: open",
                    "mentions": [], "payload": {"actor": "user:rm@example.com"}, "at": at,
                    "state": "pending", "error": "",
                },
                {
                    "key": "decided:1", "event": "decided", "meeting_id": meeting_id,
                    "release_id": release_id, "channel": "pos", "text": "*POS 3.10.0*: *Go*",
                    "mentions": ["rm@example.com"], "payload": {"decision": "go"}, "at": at,
                    "state": "not_sent", "error": "",
                },
            ],
        )  # fmt: skip
    migrate.upgrade(engine)
    assert migrate.pending_differences(engine) == []
    with Session(engine) as session:
        rows = session.exec(select(Notification).order_by(col(Notification.id))).all()
        assert [(r.dedupe_key, r.event, r.state, r.via) for r in rows] == [
            (f"meeting:opened:{meeting_id}", "meeting_opened", "not_configured", "none"),
            ("meeting:decided:1", "meeting_decided", "not_configured", "none"),
        ]
        assert [r.app_id for r in rows] == [None, app_id]
        assert [r.meeting_id for r in rows] == [meeting_id, meeting_id]
        assert rows[1].mentions == ["rm@example.com"] and rows[1].payload == {"decision": "go"}
        assert rows[0].actor == "user:rm@example.com" and rows[1].actor == "system:meetings"
        assert all("not sent" in (r.last_error or "") for r in rows)
        assert not session.exec(select(sa.literal(1)).select_from(sa.table("job"))).first()
    assert "meeting_notification" not in sa.inspect(engine).get_table_names()

    with engine.begin() as connection:
        command.downgrade(migrate.alembic_config(connection=connection), "0008")
    with engine.connect() as connection:
        back = connection.execute(sa.select(OLD).order_by(OLD.c.key)).mappings().all()
    assert [(r["key"], r["event"], r["channel"], r["state"]) for r in back] == [
        ("decided:1", "decided", "pos", "not_sent"),
        (f"opened:{meeting_id}", "opened", "meetings", "not_sent"),
    ]
    engine.dispose()
