"""Accepting heartbeats: the one pipeline behind ``POST /api/v1/heartbeats``.

The Flask view and the fast path in front of Flask (:mod:`service.adoption.fastpath`) both
read the body with :func:`items_of` and write with :func:`accept`, on the request's one
transaction: validate every item against the cached stores, count the token's rate limit
with the writes (one round trip on PostgreSQL), apply what is valid. The caller commits or
rolls back. The fast path asks for ``every_item_valid`` and hands anything uncommon to the
view, which answers it (207, 422, 429).
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass

from sqlmodel import Session

from service.adoption import ratelimit, services
from service.api import json_body
from version_monitor.ingest import (
    MAX_BATCH,
    IngestResult,
    MalformedBatch,
    ingest,
    parse_batch,
    validate_batch,
)


class BadBody(Exception):
    """The body is not a batch of heartbeats; refused whole."""

    def __init__(self, status: int, code: str, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail


class Uncommon(Exception):
    """Not every item is valid, or the rate limit refuses: the view answers."""


@dataclass
class Accepted:
    """What :func:`accept` wrote (``result``), or why nothing may be kept (``refusal``)."""

    result: IngestResult
    refusal: ratelimit.Refusal | None = None


def items_of(raw: bytes) -> list[object]:
    """The items of a request body (one heartbeat object or a list of them)."""
    try:
        data = json_body.parse(raw)
    except json_body.InvalidJson as exc:
        raise BadBody(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if isinstance(data, list) and len(data) > MAX_BATCH:
        raise BadBody(
            413,
            "payload_too_large",
            f"a batch holds at most {MAX_BATCH} heartbeats; this one has {len(data)}: split it",
            f"at most {MAX_BATCH} items",
        )
    try:
        return parse_batch(data)
    except MalformedBatch as exc:
        raise BadBody(400, "malformed_batch", str(exc), str(exc)) from None


def accept(
    session: Session,
    items: list[object],
    *,
    apps: Collection[str],
    ids: services.IngestIds,
    token_id: int,
    limit: int,
    every_item_valid: bool = False,
) -> Accepted:
    """Validate ``items`` and write the valid ones, counting them against the token's limit.

    With ``every_item_valid`` a rejected item or a refusal raises :class:`Uncommon` before
    anything is written.
    """
    moment = time.time()
    planned = ratelimit.plan(token_id=token_id, items=len(items), limit=limit, now=moment)
    if every_item_valid and isinstance(planned, ratelimit.Refusal):
        raise Uncommon
    now = services.now_naive()
    # The transaction (and SQLite's writer lock) begins with the first statement: the fleet
    # counter the store lookup reads, once every item has been parsed.
    valid, rejected = validate_batch(
        items, known_apps=apps, stores=ids.store_lookup(session), now=now
    )
    if rejected and every_item_valid:
        raise Uncommon
    if not valid or isinstance(planned, ratelimit.Refusal):
        refused = planned if isinstance(planned, ratelimit.Refusal) else None
        return Accepted(IngestResult(accepted=len(valid), rejected=rejected), refused)
    result = ingest(session, valid, now=now, devices=ids.devices, then=planned)
    result.rejected = rejected
    refusal = None
    if planned is not None:
        refusal = ratelimit.refusal_unless_counted(result.then_row, limit=limit, now=moment)
    if refusal is not None and every_item_valid:
        raise Uncommon
    return Accepted(result, refusal)
