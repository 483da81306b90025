"""The per-process token cache and the token generation: a change made in another process
(revoke, suspend, expiry) is refused here once the generation has been read again, at most
CHECK_INTERVAL later, without a query per request in between.

"Another process" is a change committed with Core SQL on an engine of its own: no ORM
session of this process sees it, exactly as for a change made by another gunicorn worker.
The cache's clock is a fake one moved by the test."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import text, update
from sqlmodel import col, select

from service import db
from service.api import tokens
from service.auth import hand_over_token, issue_token, revoke_token, update_user
from service.models import ApiToken, TokenGeneration, utcnow
from tests.builders import bearer, make_token, make_user


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    now = [1_000.0]
    monkeypatch.setattr(tokens, "time", SimpleNamespace(monotonic=lambda: now[0]))
    return now


def _elsewhere(database_url: str, token_id: int, **values: object) -> None:
    """What another process does: change the token and move the generation, one transaction."""
    engine = db.make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(update(ApiToken).where(col(ApiToken.id) == token_id).values(**values))
        conn.execute(text("UPDATE token_generation SET generation = generation + 1 WHERE id = 1"))
    engine.dispose()


def _generation(session) -> int:
    session.expire_all()
    return session.exec(select(TokenGeneration)).one().generation


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"revoked_at": utcnow()}, "this token was revoked"),
        (
            {"suspended_at": utcnow(), "suspended_reason": "its owner x@example.com was disabled"},
            "this token is suspended: its owner x@example.com was disabled; "
            "an admin can hand it to another owner",
        ),
        ({"expires_at": utcnow() - timedelta(seconds=1)}, "this token has expired"),
    ],
)
def test_a_change_made_in_another_process_is_refused_within_the_check_interval(
    app, client, session, admin, database_url, clock, change, message
):
    raw = make_token(session, creator=admin, scopes=["read"], name="reader")
    token = session.exec(select(ApiToken)).one()
    assert client.get("/api/v1/me", headers=bearer(raw)).status_code == 200
    cache = tokens.cache_of(app)
    reads = cache.generation_reads
    _elsewhere(database_url, token.id, **change)
    clock[0] += tokens.CHECK_INTERVAL * 0.8
    for _ in range(20):  # still trusted, and no query about the token per request
        assert client.get("/api/v1/me", headers=bearer(raw)).status_code == 200
    assert cache.generation_reads == reads
    clock[0] += tokens.CHECK_INTERVAL * 0.2
    refused = client.get("/api/v1/me", headers=bearer(raw))
    assert refused.status_code == 401
    assert refused.json["error"]["message"] == message
    assert cache.generation_reads == reads + 1


def test_a_change_committed_in_this_process_is_seen_by_the_next_request(
    app, client, session, admin, clock
):
    raw = make_token(session, creator=admin, scopes=["read"], name="reader")
    assert client.get("/api/v1/me", headers=bearer(raw)).status_code == 200
    with app.app_context(), db.session_scope() as mine:
        token = mine.exec(select(ApiToken)).one()
        revoke_token(session=mine, token=token, actor=mine.merge(admin))
    assert client.get("/api/v1/me", headers=bearer(raw)).status_code == 401


def test_every_change_that_can_refuse_a_token_moves_the_generation(session, admin, app):
    start = _generation(session)
    other = make_user(session, email="other@example.com", role="admin")
    token, _ = issue_token(session=session, name="t", scopes=["read"], creator=other)
    session.commit()
    assert _generation(session) == start  # a new token: nobody can have cached it
    update_user(session=session, user=other, actor="test", active=False)  # suspends it
    session.commit()
    assert _generation(session) == start + 1
    hand_over_token(session=session, token=token, owner=admin, actor="test")  # resumes it
    session.commit()
    assert _generation(session) == start + 2
    token.name = "renamed"  # refuses nobody
    session.add(token)
    session.commit()
    assert _generation(session) == start + 2
    revoke_token(session=session, token=token, actor=admin)
    session.commit()
    assert _generation(session) == start + 3


def test_a_token_read_before_a_change_is_not_kept_as_current(app, clock):
    cache = tokens.cache_of(app)
    assert cache.get("a" * 64) is None  # reads the generation (0)
    fresh = ApiToken(name="fresh", prefix="rg_x", token_hash="b", created_by_id=1, owner_id=1)
    stale = ApiToken(name="stale", prefix="rg_y", token_hash="c", created_by_id=1, owner_id=1)
    cache.put("b" * 64, fresh, generation=1, fetched=clock[0])  # read after a change
    cache.put("c" * 64, stale, generation=0, fetched=clock[0])  # read before it
    assert cache.get("b" * 64) is fresh
    assert cache.get("c" * 64) is None


def test_a_database_that_cannot_be_read_trusts_no_cached_token(app, clock, monkeypatch):
    cache = tokens.cache_of(app)
    cache.get("a" * 64)
    token = ApiToken(name="t", prefix="rg_x", token_hash="b", created_by_id=1, owner_id=1)
    cache.put("b" * 64, token, generation=0, fetched=clock[0])
    assert cache.get("b" * 64) is token

    def away(_engine):
        raise OSError("database away")

    monkeypatch.setattr(tokens, "read_generation", away)
    clock[0] += tokens.CHECK_INTERVAL
    assert cache.get("b" * 64) is None
