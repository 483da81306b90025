"""Who a bearer token is: the one place that resolves and checks API tokens.

:func:`authenticate` serves every API operation (and the update answer, which accepts either
of two scopes); :func:`usable_cached` serves the heartbeat fast path, which must not query
the database. Both read the per-process token cache and apply the same checks
(:func:`refusal`): unknown, revoked, suspended (its owner was disabled), expired, lacking the
scope.

**The cache and revocation.** Each app (one per process) keeps a :class:`TokenCache` of the
tokens it looked up (detached copies, by hash). A revocation, suspension, hand-over, expiry
or scope change must reach every process quickly, without a query per request: the
``token_generation`` row moves in the same transaction as every such change (a
``before_flush`` listener on every ORM session does the bump, so no code path forgets it;
SQL that bypasses the ORM must call :func:`bump`). A cache reads the row at most every
:data:`CHECK_INTERVAL` (0.5 s, one primary-key query on its own short connection) and forgets
every token when it moved; a token is fetched together with the generation it was read
under, so a copy read before a change is never kept as current. A change committed in this
process is seen by its next request; one committed elsewhere (another gunicorn worker, a
``relgov`` command, another machine) within ``CHECK_INTERVAL`` plus the time of a query
(``benchmarks/token_revocation.py`` measures it). Entries are also dropped after
:data:`TOKEN_CACHE_SECONDS`, a backstop for changes made outside the service. Expiry itself
is checked against the clock on every request.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import weakref
from collections.abc import Collection
from datetime import datetime
from typing import Any

from flask import Flask, current_app, g, request
from flask_login import current_user
from sqlalchemy import Engine, bindparam, event, inspect, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import col

from service import db
from service.api.errors import ApiError
from service.auth import TOKEN_PREFIX
from service.models import TOKEN_GENERATION_ROW, ApiToken, TokenGeneration, utcnow

_log = logging.getLogger(__name__)
_TOKEN_TOUCH_SECONDS = 60
CHECK_INTERVAL = 0.5  # seconds between reads of the token generation, per process
TOKEN_CACHE_SECONDS = 60.0  # backstop: changes made by hand in the database, outside the ORM
_TOKEN_CACHE_MAX = 10_000
_TOKEN_COLUMNS = ApiToken.__table__.c  # type: ignore[attr-defined]
_GENERATION = TokenGeneration.__table__  # type: ignore[attr-defined]
_GENERATION_SQL = f"SELECT generation FROM token_generation WHERE id = {TOKEN_GENERATION_ROW}"
# The token and, in the same statement (the same snapshot), the generation it was read under.
_TOKEN_QUERY = select(
    *_TOKEN_COLUMNS,
    select(_GENERATION.c.generation)
    .where(_GENERATION.c.id == TOKEN_GENERATION_ROW)
    .scalar_subquery()
    .label("read_under_generation"),
).where(_TOKEN_COLUMNS.token_hash == bindparam("token_hash"))
# A change to one of these can refuse a token, or let it in again.
_REFUSING_FIELDS = ("revoked_at", "suspended_at", "expires_at", "scopes", "owner_id", "token_hash")
_BUMPED = "relgov.token_generation_bumped"  # session.info: the transaction that bumped
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="relgov"'}


class TokenCache:
    """The tokens one process has looked up, trusted while the token generation stays put."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._entries: dict[str, tuple[float, int, ApiToken]] = {}
        self._generation: int | None = None  # the newest generation seen
        self._checked = float("-inf")  # monotonic time of the last read of the generation
        self._lock = threading.Lock()
        self.generation_reads = 0  # how often the row was read (tests)

    def forget(self) -> None:
        """Drop every entry and read the generation at the next use."""
        self._entries.clear()
        self._checked = float("-inf")

    def get(self, digest: str) -> ApiToken | None:
        now = time.monotonic()
        if now - self._checked >= CHECK_INTERVAL:
            self._check(now)
        hit = self._entries.get(digest)
        if hit is None or now - hit[0] >= TOKEN_CACHE_SECONDS:
            return None
        if self._generation is None or hit[1] < self._generation:
            return None
        return hit[2]

    def put(self, digest: str, token: ApiToken, generation: int, fetched: float) -> None:
        with self._lock:
            if self._generation is None or generation > self._generation:
                # A change this process had not seen yet: what it holds is older.
                self._entries.clear()
                self._generation = generation
            elif generation < self._generation:
                return  # read in a snapshot older than a change already seen
            if len(self._entries) >= _TOKEN_CACHE_MAX:
                self._entries.clear()
            self._entries[digest] = (fetched, generation, token)

    def _check(self, now: float) -> None:
        if not self._lock.acquire(blocking=False):
            return  # another thread of this process is reading it
        try:
            self._checked = now
            self.generation_reads += 1
            try:
                generation = read_generation(self._engine)
            except Exception:  # the database is away: trust nothing; requests reach the view
                _log.warning("could not read the token generation", exc_info=True)
                self._entries.clear()
                self._generation = None
                return
            if generation != self._generation:
                self._entries.clear()
                self._generation = generation
        finally:
            self._lock.release()


def read_generation(engine: Engine) -> int:
    """The token generation, on a short connection of its own, outside any transaction the
    caller has open and without the SQLite writer lock a write request would take."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(_GENERATION_SQL)
        row = cursor.fetchone()
        cursor.close()
        connection.rollback()
    finally:
        connection.close()
    return int(row[0]) if row and row[0] is not None else 0


_caches: weakref.WeakSet[TokenCache] = weakref.WeakSet()
_CACHE_KEY = "relgov.token_cache"


def cache_of(app: Flask) -> TokenCache:
    cache: TokenCache = app.extensions[_CACHE_KEY]
    return cache


def clear_token_cache() -> None:
    """Forget every cached token (every app of this process)."""
    for cache in list(_caches):
        cache.forget()


# --- the generation moves with every token change ----------------------------------------


def bump(session: OrmSession) -> None:
    """Move the token generation in ``session``'s transaction (an upsert)."""
    connection = session.connection()
    values = {"id": TOKEN_GENERATION_ROW, "generation": 1}
    if connection.dialect.name == "postgresql":
        statement: Any = postgresql.insert(_GENERATION).values(**values)
    else:
        statement = sqlite.insert(_GENERATION).values(**values)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[_GENERATION.c.id],
            set_={"generation": _GENERATION.c.generation + 1},
        )
    )
    session.info[_BUMPED] = session.get_transaction()


def _refusing_change(session: OrmSession) -> bool:
    if any(isinstance(obj, ApiToken) for obj in session.deleted):
        return True
    for obj in session.dirty:
        if isinstance(obj, ApiToken):
            state = inspect(obj)
            if any(state.attrs[name].history.has_changes() for name in _REFUSING_FIELDS):
                return True
    return False


def _bump_on_token_change(session: OrmSession, _context: Any, _instances: Any) -> None:
    marker = session.info.get(_BUMPED)
    if marker is not None and marker is session.get_transaction():
        return
    if _refusing_change(session):
        bump(session)


def _after_commit(session: OrmSession) -> None:
    if session.info.pop(_BUMPED, None) is not None:
        clear_token_cache()  # this process sees its own change at its next request


def _after_rollback(session: OrmSession) -> None:
    session.info.pop(_BUMPED, None)


_LISTENERS = (
    ("before_flush", _bump_on_token_change),
    ("after_commit", _after_commit),
    ("after_rollback", _after_rollback),
)


def install(app: Flask) -> None:
    """Give ``app`` its token cache (after ``db.init_app``), and make every ORM session of
    this process bump the token generation with each token change (idempotent)."""
    cache = TokenCache(app.extensions["relgov.engine"])
    app.extensions[_CACHE_KEY] = cache
    _caches.add(cache)
    for name, listener in _LISTENERS:
        if not event.contains(OrmSession, name, listener):
            event.listen(OrmSession, name, listener)


def bearer(header: str) -> str | None:
    """The raw token of an ``Authorization: Bearer <token>`` header, or None."""
    kind, _, raw = header.partition(" ")
    raw = raw.strip()
    return raw if kind.lower() == "bearer" and raw else None


def cached_token(raw: str, app: Flask | None = None) -> ApiToken | None:
    """The token for the raw bearer value when the cache of ``app`` (default: the current
    app) holds it and the entry is current; None otherwise. Reads the token generation at
    most every :data:`CHECK_INTERVAL`, never the token."""
    if not raw.startswith(TOKEN_PREFIX):
        return None
    cache = cache_of(app or current_app)
    return cache.get(hashlib.sha256(raw.encode()).hexdigest())


def lookup_token(raw: str) -> ApiToken | None:
    """The token for the raw bearer value (revoked, suspended and expired ones too), or None.

    Found tokens are cached per process (detached copies: the request must not change them)
    with the generation they were read under; unknown ones are not cached.
    """
    token = cached_token(raw)
    if token is not None or not raw.startswith(TOKEN_PREFIX):
        return token
    digest = hashlib.sha256(raw.encode()).hexdigest()
    fetched = time.monotonic()
    row = db.session().connection().execute(_TOKEN_QUERY, {"token_hash": digest}).first()
    if row is None:
        return None
    values = row._asdict()
    generation = int(values.pop("read_under_generation") or 0)
    token = ApiToken(**values)
    cache_of(current_app).put(digest, token, generation, fetched)
    return token


def refusal(token: ApiToken | None, scopes: Collection[str]) -> ApiError | None:
    """Why ``token`` may not call an operation needing one of ``scopes``; None if it may."""
    if token is None:
        return ApiError(401, "unauthorized", "unknown token", headers=_challenge("invalid_token"))
    if token.revoked_at is not None:
        return ApiError(
            401, "unauthorized", "this token was revoked", headers=_challenge("invalid_token")
        )
    if token.suspended_at is not None:
        return ApiError(
            401,
            "unauthorized",
            f"this token is suspended: {token.suspended_reason or 'by an admin'}; "
            "an admin can hand it to another owner",
            headers=_challenge("invalid_token"),
        )
    if not token.active:
        return ApiError(
            401, "unauthorized", "this token has expired", headers=_challenge("invalid_token")
        )
    if not any(scope in token.scopes for scope in scopes):
        wanted = " or ".join(repr(s) for s in scopes)
        return ApiError(
            403,
            "forbidden",
            f"this token lacks the scope {wanted} (it has: {', '.join(token.scopes)})",
        )
    return None


def usable_cached(app: Flask, header: str, scope: str) -> ApiToken | None:
    """For the heartbeat fast path: the token of ``header`` when it is in the cache of
    ``app``, may use ``scope`` and needs no use recorded yet; else None (the view decides)."""
    raw = bearer(header)
    token = cached_token(raw, app) if raw else None
    if token is None or refusal(token, (scope,)) is not None or touch_due(token):
        return None
    return token


def authenticate(scopes: str | Collection[str], method: str) -> None:
    """Let the request through with a token holding one of ``scopes``, or raise 401/403."""
    wanted = (scopes,) if isinstance(scopes, str) else tuple(scopes)
    header = request.headers.get("Authorization", "")
    if not header:
        # A logged-in person may read the API from the browser; writes need a token.
        if method == "GET" and current_user.is_authenticated and "read" in wanted:
            return
        raise ApiError(
            401,
            "unauthorized",
            "missing credentials: send Authorization: Bearer <token>",
            headers=CHALLENGE,
        )
    raw = bearer(header)
    if raw is None:
        raise ApiError(
            401,
            "unauthorized",
            "the Authorization header must be 'Bearer <token>'",
            headers=CHALLENGE,
        )
    token = lookup_token(raw)
    refused = refusal(token, wanted)
    if refused is not None:
        raise refused
    assert token is not None
    g.api_token = token
    touch_token(token)


def _challenge(error: str) -> dict[str, str]:
    return {"WWW-Authenticate": f'Bearer realm="relgov", error="{error}"'}


def touch_due(token: ApiToken, now: datetime | None = None) -> bool:
    """Whether a use of ``token`` is to be recorded now (at most once a minute)."""
    used = token.last_used_at
    return used is None or ((now or utcnow()) - used).total_seconds() >= _TOKEN_TOUCH_SECONDS


def touch_token(token: ApiToken) -> None:
    """Record the token's use (at most once a minute), after the request's transaction."""
    now = utcnow()
    if not touch_due(token, now):
        return
    token_id = token.id
    engine = db.engine()
    token.last_used_at = now  # the cached copy: the next requests need not touch again

    def write() -> None:
        # Its own short transaction once the request's is over: it neither widens the
        # request's transaction nor waits on the request's own write lock.
        with engine.begin() as conn:
            conn.execute(
                update(ApiToken).where(col(ApiToken.id) == token_id).values(last_used_at=now)
            )

    db.after_request_transaction(write)
