"""Heartbeat requests: what a batch may hold and how each item is checked.

:func:`parse_batch` takes a request body apart (or refuses it whole with
:class:`MalformedBatch`); :func:`validate_batch` splits its items into valid heartbeats
(:class:`ValidHeartbeat`) and rejections (:class:`Rejection`). No I/O here: the stores are
looked up by a function the caller passes (e.g.
:func:`version_monitor.ingest.apply.lookup_stores`) or found in a mapping (a cache).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from beta.validation import DEVICE_ID_RE, device_id_refusal
from utc import naive
from versioning import InvalidVersion, parse_version
from versioning.storage_key import version_sort_key

__all__ = [
    "MAX_AGE",
    "MAX_BATCH",
    "MAX_FUTURE",
    "REJECTION_CODES",
    "DeviceKind",
    "HeartbeatIn",
    "MalformedBatch",
    "Rejection",
    "StoreLookup",
    "StoreRef",
    "ValidHeartbeat",
    "parse_batch",
    "validate_batch",
]


MAX_BATCH = 1000
MAX_FUTURE = timedelta(minutes=5)
MAX_AGE = timedelta(days=7)

DeviceKind = Literal["pos", "handy", "kds", "kiosk"]  # beta.models.DEVICE_KINDS


class HeartbeatIn(BaseModel):
    """One heartbeat as a store device sends it."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    # The device API's rule (beta.validation), checked by pydantic's own pattern matching
    # (a Python validator would add a third to the cost of each heartbeat); a refusal says
    # what the device API says (_first_error).
    device_id: str = Field(max_length=128, pattern=DEVICE_ID_RE.pattern, examples=["pos-0042-01"])
    store_id: str = Field(
        min_length=1, max_length=64, description="The store's external id", examples=["S0042"]
    )
    app: str = Field(min_length=1, max_length=64, examples=["pos"])
    version: str = Field(min_length=1, max_length=128, examples=["3.12.0"])
    device_kind: DeviceKind
    sent_at: datetime = Field(
        description="ISO 8601; without an offset it is taken as UTC",
        examples=["2024-07-01T09:30:00+09:00"],
    )

    @field_validator("sent_at", mode="before")
    @classmethod
    def _sent_at_is_text(cls, value: object) -> object:
        # Pydantic would read a bare number as a Unix time; a device that sends one has a bug.
        if not isinstance(value, str | datetime):
            raise ValueError("sent_at must be an ISO 8601 date-time string")
        return value


class MalformedBatch(ValueError):
    """The request body is not one heartbeat object nor a list of them: refuse it whole."""


@dataclass(frozen=True)
class StoreRef:
    id: int
    in_beta: bool


# What a rejection's ``code`` can be (a metric label: a fixed set).
REJECTION_CODES = (
    "not_an_object",
    "invalid_field",
    "unknown_app",
    "unknown_store",
    "invalid_version",
    "sent_at_in_future",
    "sent_at_too_old",
)


@dataclass(frozen=True)
class Rejection:
    index: int
    field: str | None
    reason: str
    code: str = "invalid_field"  # one of REJECTION_CODES

    def as_dict(self) -> dict[str, object]:
        return {"index": self.index, "field": self.field, "reason": self.reason}


@dataclass(frozen=True)
class ValidHeartbeat:
    index: int
    device_id: str
    store_id: int
    channel: str
    app: str
    version: str
    version_key: str
    device_kind: str
    sent_at: datetime  # naive UTC


StoreLookup = Mapping[str, StoreRef] | Callable[[set[str]], Mapping[str, StoreRef]]


def parse_batch(body: object) -> list[object]:
    """The items of a request body: one object or a list of 1 to ``MAX_BATCH`` of them."""
    if isinstance(body, dict):
        return [body]
    if not isinstance(body, list):
        raise MalformedBatch("body must be a heartbeat object or a list of them")
    if not body:
        raise MalformedBatch("the batch is empty")
    if len(body) > MAX_BATCH:
        raise MalformedBatch(f"a batch holds at most {MAX_BATCH} heartbeats, not {len(body)}")
    return body


@lru_cache(maxsize=4096)
def _parsed_version(text: str) -> tuple[str, str]:
    """``(original, sort key)`` of a version string (devices send few distinct ones)."""
    version = parse_version(text)
    return version.original, version_sort_key(version)


def _first_error(error: ValidationError) -> tuple[str | None, str]:
    first = error.errors(include_url=False)[0]
    loc = first.get("loc", ())
    name = str(loc[0]) if loc else None
    if name == "device_id" and first.get("type") == "string_pattern_mismatch":
        return name, device_id_refusal(str(first.get("input", "")))
    return name, str(first.get("msg", "invalid"))


def validate_batch(
    items: Sequence[object],
    *,
    known_apps: Collection[str],
    stores: StoreLookup,
    now: datetime,
) -> tuple[list[ValidHeartbeat], list[Rejection]]:
    """Split ``items`` into valid heartbeats and rejections (index, field, reason).

    ``stores`` maps store external ids to :class:`StoreRef`, or is a function that does so
    for a set of ids (called once per batch). ``now`` is naive UTC.
    """
    parsed: list[tuple[int, HeartbeatIn]] = []
    rejected: list[Rejection] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            rejected.append(
                Rejection(index, None, "a heartbeat must be a JSON object", "not_an_object")
            )
            continue
        try:
            parsed.append((index, HeartbeatIn.model_validate(item)))
        except ValidationError as error:
            name, reason = _first_error(error)
            rejected.append(Rejection(index, name, reason))

    wanted = {hb.store_id for _, hb in parsed}
    store_map = stores if isinstance(stores, Mapping) else stores(wanted)
    earliest, latest = now - MAX_AGE, now + MAX_FUTURE
    valid: list[ValidHeartbeat] = []
    for index, hb in parsed:
        store = store_map.get(hb.store_id)
        sent_at = naive(hb.sent_at)
        if hb.app not in known_apps:
            rejected.append(Rejection(index, "app", f"unknown app {hb.app!r}", "unknown_app"))
            continue
        if store is None:
            reason = f"unknown store {hb.store_id!r}"
            rejected.append(Rejection(index, "store_id", reason, "unknown_store"))
            continue
        try:
            version, version_key = _parsed_version(hb.version)
        except InvalidVersion as error:
            rejected.append(Rejection(index, "version", str(error), "invalid_version"))
            continue
        if sent_at > latest:
            reason = "sent_at is more than 5 minutes in the future"
            rejected.append(Rejection(index, "sent_at", reason, "sent_at_in_future"))
            continue
        if sent_at < earliest:
            reason = "sent_at is more than 7 days old"
            rejected.append(Rejection(index, "sent_at", reason, "sent_at_too_old"))
            continue
        valid.append(
            ValidHeartbeat(
                index=index,
                device_id=hb.device_id,
                store_id=store.id,
                channel="beta" if store.in_beta else "stable",
                app=hb.app,
                version=version,
                version_key=version_key,
                device_kind=hb.device_kind,
                sent_at=sent_at,
            )
        )
    rejected.sort(key=lambda r: r.index)
    return valid, rejected
