"""Who a bearer token is: the one place that resolves and checks API tokens.

:func:`authenticate` serves every API operation (and the update answer, which accepts either
of two scopes); :func:`usable_cached` serves the heartbeat fast path, which must not query
the database. Both read the per-process token cache and apply the same checks
(:func:`refusal`): unknown, revoked, suspended (its owner was disabled), expired, lacking the
scope.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Collection
from datetime import datetime
from typing import Any

from flask import g, request
from flask_login import current_user
from sqlalchemy import bindparam, event, select, update
from sqlmodel import col

from service import db
from service.api.errors import ApiError
from service.auth import TOKEN_PREFIX
from service.models import ApiToken, utcnow

_TOKEN_TOUCH_SECONDS = 60
# How long a process trusts a token it looked up. A revocation or expiry change made through
# the ORM in this process (the pages, the API, the CLI, tests) clears the cache at once; one
# made in another gunicorn worker takes effect there within this many seconds. Expiry itself
# is checked against the clock on every request.
TOKEN_CACHE_SECONDS = 5.0
_TOKEN_CACHE_MAX = 10_000
_TOKEN_COLUMNS = ApiToken.__table__.c  # type: ignore[attr-defined]
_TOKEN_QUERY = select(*_TOKEN_COLUMNS).where(_TOKEN_COLUMNS.token_hash == bindparam("token_hash"))
_token_cache: dict[str, tuple[float, ApiToken]] = {}
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="relgov"'}


def clear_token_cache() -> None:
    """Forget every cached token (this process)."""
    _token_cache.clear()


def _token_changed(_mapper: Any, _connection: Any, _target: Any) -> None:
    _token_cache.clear()


def install() -> None:
    """Clear the cache whenever this process changes a token through the ORM (idempotent)."""
    for name in ("after_update", "after_delete"):
        if not event.contains(ApiToken, name, _token_changed):
            event.listen(ApiToken, name, _token_changed)


def bearer(header: str) -> str | None:
    """The raw token of an ``Authorization: Bearer <token>`` header, or None."""
    kind, _, raw = header.partition(" ")
    raw = raw.strip()
    return raw if kind.lower() == "bearer" and raw else None


def cached_token(raw: str) -> ApiToken | None:
    """The token for the raw bearer value when this process holds it in its cache and the
    entry is fresh (no database access); None otherwise."""
    if not raw.startswith(TOKEN_PREFIX):
        return None
    hit = _token_cache.get(hashlib.sha256(raw.encode()).hexdigest())
    if hit is not None and time.monotonic() - hit[0] < TOKEN_CACHE_SECONDS:
        return hit[1]
    return None


def lookup_token(raw: str) -> ApiToken | None:
    """The token for the raw bearer value (revoked and expired ones too), or None.

    Found tokens are cached per process for :data:`TOKEN_CACHE_SECONDS` as detached copies
    (the request must not change them); unknown ones are not cached.
    """
    token = cached_token(raw)
    if token is not None or not raw.startswith(TOKEN_PREFIX):
        return token
    digest = hashlib.sha256(raw.encode()).hexdigest()
    now = time.monotonic()
    row = db.session().connection().execute(_TOKEN_QUERY, {"token_hash": digest}).first()
    if row is None:
        return None
    token = ApiToken(**row._asdict())
    if len(_token_cache) >= _TOKEN_CACHE_MAX:
        _token_cache.clear()
    _token_cache[digest] = (now, token)
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


def usable_cached(header: str, scope: str) -> ApiToken | None:
    """For the heartbeat fast path: the token of ``header`` when it is in this process's
    cache, may use ``scope`` and needs no use recorded yet; else None (the view decides)."""
    raw = bearer(header)
    token = cached_token(raw) if raw else None
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
