"""Publish release notes to a Notion data source: exact, idempotent, one attempt per call.

Talks to Notion only through the official ``notion_client.Client`` (API 2025-09-03). The
service owns retries with backoff, the circuit breaker and the job table; :meth:`publish`
makes one attempt (plus notion-client's own retries of 429, and of 500/503 on GET/DELETE)
and raises :class:`TransientNotionError` or :class:`PermanentNotionError`.

Schema of the data source (see :data:`REQUIRED_PROPERTIES`)::

    Version (title) · App (select) · Release date (date) · Status (select: Draft,
    Publishing, Published, Failed) · Commits (number) · Breaking changes (number) ·
    Notes hash (rich_text) · Release link (url)

"App" is a select rather than rich text so support staff can group and filter notes by app
in Notion views; an app name may not contain a comma (Notion's rule for select options).

Publishing one note:

1. find the page by Version (and App): none → create, one → update, several → keep the
   oldest and move the others to the trash;
2. skip when the stored "Notes hash" equals the new hash and Status is Published;
3. otherwise mark it Publishing (clearing the hash) and erase its content, append the
   blocks in requests of ≤ 100 children, ≤ 2 nesting levels, ≤ 1000 blocks and well under
   500 KB (deeper levels go to the block ids the previous append returned), then set Status
   Published and the hash.

A failure half-way leaves Status "Publishing" (a permanent error also tries to set
"Failed"), so the next attempt redoes the whole replace; a create whose response was lost
is found by the query of the next attempt instead of being duplicated.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import math
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, Literal, Protocol, cast

import httpx
from notion_client import Client
from notion_client.client import RetryOptions
from notion_client.errors import (
    HTTPResponseError,
    NotionClientErrorBase,
    RequestTimeoutError,
)

from release_notes.notion_blocks import (
    MAX_LINK_URL,
    Block,
    block_children,
    blocks_json_size,
    count_blocks,
    markdown_to_blocks,
    plain_rich_text,
    with_children,
)

__all__ = [
    "NOTION_VERSION",
    "RELEASE_NOTES_SCHEMA",
    "REQUIRED_PROPERTIES",
    "STATUS_OPTIONS",
    "ChangePlan",
    "CreateUnconfirmed",
    "Ledger",
    "MemoryLedger",
    "NotionConfig",
    "NotionError",
    "NotionPublisher",
    "PageContent",
    "PageRecord",
    "PageSchema",
    "PageSpec",
    "PermanentNotionError",
    "PublishResult",
    "RateLimiter",
    "SchemaCache",
    "SchemaReport",
    "TokenBucket",
    "TransientNotionError",
    "block_fingerprint",
    "classify_error",
    "notes_hash",
    "plan_appends",
    "plan_changes",
]

NOTION_VERSION = "2025-09-03"
STATUS_OPTIONS = ("Draft", "Publishing", "Published", "Failed")
REQUIRED_PROPERTIES: dict[str, str] = {
    "Version": "title",
    "App": "select",
    "Release date": "date",
    "Status": "select",
    "Commits": "number",
    "Breaking changes": "number",
    "Notes hash": "rich_text",
    "Release link": "url",
    "Publish key": "rich_text",
}
# Added by the publisher itself when missing (a database made before it existed).
ADDED_PROPERTIES = frozenset({"Publish key"})


@dataclass(frozen=True)
class PageSchema:
    """The kind of page a data source holds: its properties (name → type; one title, a
    "Status" select with :data:`STATUS_OPTIONS` and a "Publish key" text in every kind), the
    text property keeping the content hash, and the kind's name for messages."""

    properties: Mapping[str, str]
    hash_property: str
    name: str
    # Set up a data source that lacks properties (init_schema) on the first publish instead
    # of refusing: for a database the service owns, such as the meetings'.
    auto_init: bool = False


RELEASE_NOTES_SCHEMA = PageSchema(REQUIRED_PROPERTIES, "Notes hash", "release-notes")

MAX_CHILDREN = 100
MAX_BLOCKS_PER_REQUEST = 1000
MAX_NESTING = 2
# Notion's limit is 500 KB per request; leave room for the envelope and encoding slack.
MAX_REQUEST_BYTES = 400_000
_TRANSIENT_STATUSES = frozenset({409, 429, 500, 502, 503, 504, 529})

_log = logging.getLogger(__name__)


# --- errors ---------------------------------------------------------------------------------


class NotionError(Exception):
    """A Notion call failed; ``status``/``code`` are Notion's when it answered."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class TransientNotionError(NotionError):
    """Worth retrying later: rate limit, 5xx, 529 overload, timeout or connection failure.

    ``retry_after`` is Notion's ``Retry-After`` in seconds when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        code: str | None = None,
    ):
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class PermanentNotionError(NotionError):
    """Retrying will not help (bad token, no access, missing object, invalid request or schema);
    the message is Notion's."""


def maybe_applied(error: NotionError) -> bool:
    """Whether a write that failed with ``error`` may still have been applied: Notion
    refused it outright (an error status it answers before doing anything: 4xx, 429, 503,
    529) or it may have been done (timeout, lost connection, 500, 502, 504)."""
    if isinstance(error, PermanentNotionError):
        return False
    return error.status not in (409, 429, 503, 529)


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _error_message(error: HTTPResponseError) -> tuple[str, str]:
    message, code = str(error), str(getattr(error.code, "value", error.code))
    try:
        body = json.loads(error.body)
    except (TypeError, ValueError):
        return message, code
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            message = body["message"]
        if isinstance(body.get("code"), str):
            code = body["code"]
    return message, code


def classify_error(error: BaseException) -> NotionError:
    """Map a notion-client / httpx exception to a transient or permanent error."""
    if isinstance(error, NotionError):
        return error
    if isinstance(error, RequestTimeoutError):
        return TransientNotionError(str(error), code="timeout")
    if isinstance(error, httpx.TransportError):
        return TransientNotionError(
            f"connection to Notion failed: {error.__class__.__name__}: {error}", code="connection"
        )
    if isinstance(error, HTTPResponseError):
        message, code = _error_message(error)
        if error.status in _TRANSIENT_STATUSES or error.status >= 500:
            return TransientNotionError(
                message, retry_after=_retry_after(error.headers), status=error.status, code=code
            )
        return PermanentNotionError(message, status=error.status, code=code)
    if isinstance(error, NotionClientErrorBase):
        return PermanentNotionError(str(error), code=str(getattr(error, "code", "")) or None)
    return PermanentNotionError(f"{error.__class__.__name__}: {error}")


# --- rate limiting --------------------------------------------------------------------------


class TokenBucket:
    """Client-side rate limit: ``rate`` requests per second on average, bursts of ``capacity``.

    ``clock`` and ``sleep`` are injectable so tests advance time without waiting.
    """

    def __init__(
        self,
        rate: float = 2.5,
        capacity: float = 3.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("rate must be > 0 and capacity ≥ 1")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._sleep = sleep
        self._tokens = capacity
        self._last = clock()
        self._lock = threading.Lock()
        self.waited = 0.0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def acquire(self) -> None:
        """Take one token, sleeping until one is available."""
        with self._lock:
            self._refill()
            if self._tokens < 1:
                wait = (1 - self._tokens) / self.rate
                self.waited += wait
                self._sleep(wait)
                self._refill()
                # The wait paid for exactly one token; don't loop on float rounding.
                self._tokens = max(self._tokens, 1.0)
            self._tokens -= 1

    def pause(self, seconds: float) -> None:
        """Notion asked to wait: the next request goes no sooner than ``seconds`` from now."""
        with self._lock:
            self._refill()
            self._tokens = min(self._tokens, 1 - seconds * self.rate)


class RateLimiter(Protocol):
    """Takes one request's turn (sleeping as needed); :class:`TokenBucket` per process, or
    one shared by every worker (the service keeps it in its database)."""

    def acquire(self) -> None: ...

    def pause(self, seconds: float) -> None:
        """Notion asked everyone to wait ``seconds`` (a 429's ``Retry-After``)."""


# --- configuration and values ---------------------------------------------------------------


@dataclass(frozen=True)
class NotionConfig:
    """Where and how to publish. Give ``database_id`` (its first data source is used) or
    ``data_source_id``. ``base_url`` points the client elsewhere (the local fake)."""

    token: str
    database_id: str | None = None
    data_source_id: str | None = None
    base_url: str | None = None
    timeout_s: float = 60.0
    max_retries: int = 2
    initial_retry_delay_ms: int = 1_000
    max_retry_delay_ms: int = 60_000
    requests_per_second: float = 2.5
    burst: float = 3.0
    # A 429 whose Retry-After is at most this many seconds is waited out and the same
    # request sent again, up to ``retry_after_tries`` times (0: raise at once).
    retry_after_max_s: float = 0.0
    retry_after_tries: int = 3
    # After a create whose outcome is unknown, how long Notion's search may lag behind it:
    # no second create before this many seconds have passed.
    create_settle_s: float = 60.0
    # After a second create, how long later publishes keep looking for the first page (it
    # may show in the search later still), at most ``duplicate_check_every_s`` apart.
    duplicate_watch_s: float = 600.0
    duplicate_check_every_s: float = 60.0
    # The kind of page the data source holds (release notes unless told otherwise).
    schema: PageSchema = RELEASE_NOTES_SCHEMA

    def __post_init__(self) -> None:
        if not self.token:
            raise ValueError("a Notion token is required")
        if not (self.database_id or self.data_source_id):
            raise ValueError("give database_id or data_source_id")


class PageSpec(Protocol):
    """One page as it should appear in Notion, whatever its kind (:class:`PageContent` for
    a release note): what the publisher needs besides its :class:`PageSchema`."""

    def identity(self) -> list[dict[str, Any]]:
        """The data-source filter conditions (all must hold) that find this page."""
        ...

    def properties(self) -> dict[str, Any]:
        """Every property the page gets, besides Status, the hash and the publish key."""
        ...

    def content_hash(self) -> str:
        """A hash over the content and every property written: equal means unchanged."""
        ...

    def to_blocks(self) -> list[Block]:
        """The page's blocks."""
        ...


@dataclass(frozen=True)
class PageContent:
    """One release note as it should appear in Notion."""

    version: str
    markdown: str
    app: str | None = None
    release_date: date | None = None
    commits: int = 0
    breaking_changes: int = 0
    release_link: str | None = None

    def identity(self) -> list[dict[str, Any]]:
        app = _app_option(self.app)
        return [
            {"property": "Version", "title": {"equals": self.version}},
            {"property": "App", "select": {"equals": app} if app else {"is_empty": True}},
        ]

    def properties(self) -> dict[str, Any]:
        link = (
            self.release_link
            if self.release_link and len(self.release_link) <= MAX_LINK_URL
            else None
        )
        return {
            "Version": {"title": _rich_text_value(self.version)},
            "App": {"select": {"name": app} if (app := _app_option(self.app)) else None},
            "Release date": {
                "date": {"start": self.release_date.isoformat()} if self.release_date else None
            },
            "Commits": {"number": self.commits},
            "Breaking changes": {"number": self.breaking_changes},
            "Release link": {"url": link},
        }

    def content_hash(self) -> str:
        return notes_hash(self)

    def to_blocks(self) -> list[Block]:
        return markdown_to_blocks(self.markdown)


@dataclass(frozen=True)
class PublishResult:
    page_id: str
    url: str | None
    action: Literal["created", "updated", "skipped"]
    notes_hash: str
    blocks: int
    requests: int
    trashed_duplicates: tuple[str, ...] = ()
    # Seconds after which a publish should look again for a duplicate page (a second
    # create happened while the first one's outcome was unknown; see duplicate_watch_s).
    recheck_after: float | None = None


@dataclass(frozen=True)
class SchemaReport:
    """What :meth:`NotionPublisher.check_schema` found."""

    accessible: bool
    data_source_id: str | None = None
    missing: tuple[str, ...] = ()
    wrong_type: dict[str, tuple[str, str]] = field(default_factory=dict)
    title_property: str | None = None
    missing_status_options: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return (
            self.accessible
            and not self.missing
            and not self.wrong_type
            and not self.missing_status_options
        )


def notes_hash(page: PageContent) -> str:
    """Content hash over the note and every property the publisher writes."""
    payload = {
        "v": 1,
        "version": page.version,
        "app": page.app,
        "release_date": page.release_date.isoformat() if page.release_date else None,
        "commits": page.commits,
        "breaking_changes": page.breaking_changes,
        "release_link": page.release_link,
        "markdown": page.markdown,
    }
    encoded = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return "sha256:" + hashlib.sha256(encoded).hexdigest()


# --- request planning -----------------------------------------------------------------------


@dataclass
class _Shape:
    height: int
    widest: int
    count: int
    size: int


class _Shapes:
    """Memoized height / widest children array / block count / JSON size of subtrees."""

    def __init__(self) -> None:
        self._memo: dict[int, tuple[Block, _Shape]] = {}

    def of(self, block: Block) -> _Shape:
        hit = self._memo.get(id(block))
        if hit is not None and hit[0] is block:
            return hit[1]
        children = block_children(block)
        shapes = [self.of(c) for c in children]
        shape = _Shape(
            height=1 + max(s.height for s in shapes) if shapes else 0,
            widest=max([len(children), *(s.widest for s in shapes)]),
            count=1 + sum(s.count for s in shapes),
            size=blocks_json_size([block]),
        )
        self._memo[id(block)] = (block, shape)
        return shape

    def whole(self, block: Block, levels: int) -> bool:
        s = self.of(block)
        return s.height <= levels and s.widest <= MAX_CHILDREN


@dataclass
class AppendRequest:
    """One request's worth of top-level blocks, plus what must follow under some of them."""

    children: list[Block]
    # (index in ``children``, blocks to append under that block once its id is known)
    followups: list[tuple[int, list[Block]]]

    @property
    def block_count(self) -> int:
        return count_blocks(self.children)


def _take_request(
    queue: list[Block], start: int, shapes: _Shapes, *, whole_only: bool = False
) -> tuple[AppendRequest, int]:
    """Greedily fill one request from ``queue[start:]``; return it and the next index."""
    children: list[Block] = []
    followups: list[tuple[int, list[Block]]] = []
    count = 0
    size = 64
    i = start
    while i < len(queue) and len(children) < MAX_CHILDREN:
        block = queue[i]
        shape = shapes.of(block)
        if (
            shapes.whole(block, MAX_NESTING)
            and shape.count <= MAX_BLOCKS_PER_REQUEST
            and shape.size <= MAX_REQUEST_BYTES
        ):
            if (
                count + shape.count > MAX_BLOCKS_PER_REQUEST
                or size + shape.size > MAX_REQUEST_BYTES
            ):
                break
            children.append(block)
            count += shape.count
            size += shape.size + 1
            i += 1
            continue
        if whole_only:
            break
        # Send the block with the prefix of its children that fits one level down, and
        # append the rest under the id Notion returns for it.
        bare = with_children(block, None)
        bare_size = blocks_json_size([bare])
        if children and (
            count + 1 > MAX_BLOCKS_PER_REQUEST or size + bare_size > MAX_REQUEST_BYTES
        ):
            break
        kids = block_children(block)
        prefix: list[Block] = []
        p_count, p_size = count + 1, size + bare_size
        for kid in kids:
            ks = shapes.of(kid)
            if (
                len(prefix) >= MAX_CHILDREN
                or not shapes.whole(kid, MAX_NESTING - 1)
                or p_count + ks.count > MAX_BLOCKS_PER_REQUEST
                or p_size + ks.size > MAX_REQUEST_BYTES
            ):
                break
            prefix.append(kid)
            p_count += ks.count
            p_size += ks.size + 1
        children.append(with_children(block, prefix))
        rest = kids[len(prefix) :]
        if rest:
            followups.append((len(children) - 1, rest))
        count, size = p_count, p_size
        i += 1
    return AppendRequest(children, followups), i


def plan_appends(blocks: Sequence[Block]) -> Iterator[AppendRequest]:
    """Top-level requests for ``blocks`` (follow-ups are planned when their parent exists)."""
    queue = list(blocks)
    shapes = _Shapes()
    i = 0
    while i < len(queue):
        request, i = _take_request(queue, i, shapes)
        yield request


def estimate_requests(blocks: Sequence[Block]) -> int:
    """Append requests needed for ``blocks`` under one parent, follow-ups included."""
    total = 0
    for request in plan_appends(blocks):
        total += 1
        for _, rest in request.followups:
            total += estimate_requests(rest)
    return total


# --- what was published: the ledger ----------------------------------------------------------

STALE = "stale"  # a block whose last update or delete was not confirmed
UNKNOWN = "unknown"  # a block on the page this publisher did not write (or lost track of)
PARTIAL = "partial"  # a block whose deeper children were not all appended yet


@dataclass
class PageRecord:
    """What a publisher knows about one note's page, kept between attempts by a
    :class:`Ledger`.

    ``entries`` are the page's top-level blocks in order: ``{"id", "fp", "type", "kids"}``
    (``fp`` the :func:`block_fingerprint` of the block as sent, or :data:`STALE`,
    :data:`UNKNOWN`, :data:`PARTIAL`); ``known`` says they were read or written by this
    ledger (False: read the page first). ``pending`` is the step under way, saved before
    each request: ``create``, ``append`` (after which block, what was sent), ``update``,
    ``delete``, ``props`` or ``reread``; the next attempt settles it before going on.
    ``key`` is the page's publish key (its "Publish key" property), ``create_sent_at``
    (seconds, the publisher's clock) the time of a create not yet confirmed,
    ``recheck_until`` the time until which later publishes look for a duplicate page.
    """

    page_id: str | None = None
    url: str | None = None
    key: str = ""
    entries: list[dict[str, Any]] = field(default_factory=list)
    known: bool = False
    pending: dict[str, Any] | None = None
    notes_hash: str | None = None
    create_sent_at: float | None = None
    recheck_until: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "entries": self.entries,
            "known": self.known,
            "pending": self.pending,
            "notes_hash": self.notes_hash,
            "create_sent_at": self.create_sent_at,
            "recheck_until": self.recheck_until,
        }

    @classmethod
    def from_json(cls, page_id: str | None, key: str, data: Mapping[str, Any] | None) -> PageRecord:
        data = data or {}
        return cls(
            page_id=page_id,
            url=data.get("url"),
            key=key,
            entries=[dict(e) for e in data.get("entries") or []],
            known=bool(data.get("known")),
            pending=data.get("pending"),
            notes_hash=data.get("notes_hash"),
            create_sent_at=data.get("create_sent_at"),
            recheck_until=data.get("recheck_until"),
        )


class Ledger(Protocol):
    """Where a page's :class:`PageRecord` lives between attempts (the service: a table)."""

    def load(self) -> PageRecord: ...

    def save(self, record: PageRecord) -> None: ...


class MemoryLedger:
    """A ledger in memory (a publisher's default, and tests)."""

    def __init__(self, record: PageRecord | None = None) -> None:
        self._data: tuple[str | None, str, dict[str, Any]] | None = None
        self.saves = 0
        if record is not None:
            self.save(record)

    def load(self) -> PageRecord:
        if self._data is None:
            return PageRecord()
        page_id, key, data = self._data
        return PageRecord.from_json(page_id, key, json.loads(json.dumps(data)))

    def save(self, record: PageRecord) -> None:
        self.saves += 1
        self._data = (record.page_id, record.key, json.loads(json.dumps(record.to_json())))


class CreateUnconfirmed(TransientNotionError):
    """An earlier create may have made the page, but Notion's search does not show it yet:
    look again in ``wait_s`` seconds rather than create a second page."""

    def __init__(self, message: str, *, wait_s: float) -> None:
        super().__init__(message, retry_after=wait_s, code="create_unconfirmed")
        self.wait_s = wait_s


class _PageGone(Exception):
    """The recorded page was deleted in Notion."""


# --- fingerprints and the plan of changes ----------------------------------------------------

_BODY_DEFAULTS: dict[str, Any] = {
    "color": "default",
    "is_toggleable": False,
    "checked": False,
    "language": "plain text",
    "has_column_header": False,
    "has_row_header": False,
    "caption": [],
}
_MARKS = ("bold", "italic", "strikethrough", "underline", "code")


def _canonical_rich_text(items: Any) -> list[Any]:
    out: list[Any] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type", "text")
        url = None
        if kind == "text":
            text = item.get("text") or {}
            content = text.get("content", item.get("plain_text", ""))
            link = text.get("link")
            url = link.get("url") if isinstance(link, Mapping) else None
        elif kind == "equation":
            content = (item.get("equation") or {}).get("expression", "")
        else:
            content, url = item.get("plain_text", ""), item.get("href")
        marks = item.get("annotations") or {}
        out.append(
            [
                kind,
                content,
                url,
                [m for m in _MARKS if marks.get(m) is True],
                marks.get("color", "default"),
            ]
        )
    return out


def _canonical(block: Mapping[str, Any]) -> list[Any]:
    kind = str(block.get("type"))
    body = block.get(kind)
    fields: dict[str, Any] = {}
    for key, value in body.items() if isinstance(body, Mapping) else ():
        if key == "children":
            continue
        if key in ("rich_text", "caption"):
            value = _canonical_rich_text(value)
        elif key == "cells" and isinstance(value, list):
            value = [_canonical_rich_text(cell) for cell in value]
        if key in _BODY_DEFAULTS and value == _BODY_DEFAULTS[key]:
            continue
        fields[key] = value
    return [kind, fields, [_canonical(child) for child in block_children(block)]]


def block_fingerprint(block: Mapping[str, Any]) -> str:
    """A hash of what a block says, children included. The same for a block as sent and as
    Notion returns it (defaults, ``plain_text`` and ids are left out)."""
    encoded = json.dumps(_canonical(block), sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()[:32]


def _entry(block_id: str, block: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": block_id,
        "fp": block_fingerprint(block),
        "type": str(block.get("type")),
        "kids": bool(block_children(block)) or bool(block.get("has_children")),
    }


# Blocks whose text Notion updates in place (PATCH /blocks/{id}); children cannot be.
UPDATABLE_TYPES = frozenset(
    {
        "paragraph",
        "heading_1",
        "heading_2",
        "heading_3",
        "bulleted_list_item",
        "numbered_list_item",
        "to_do",
        "quote",
        "toggle",
        "callout",
        "code",
    }
)


@dataclass
class Slot:
    """One top-level block of the page as it will be: kept (``block`` None), updated in
    place (both), or inserted (``entry`` None)."""

    entry: dict[str, Any] | None
    block: Block | None


@dataclass
class ChangePlan:
    slots: list[Slot]
    deletes: list[dict[str, Any]]

    @property
    def updates(self) -> int:
        return sum(1 for s in self.slots if s.entry is not None and s.block is not None)

    @property
    def inserts(self) -> int:
        return sum(1 for s in self.slots if s.entry is None)


def _updatable(entry: Mapping[str, Any], block: Block) -> bool:
    kind = block.get("type")
    return (
        entry.get("type") == kind
        and kind in UPDATABLE_TYPES
        and not entry.get("kids")
        and not block_children(block)
    )


def plan_changes(entries: Sequence[Mapping[str, Any]], blocks: Sequence[Block]) -> ChangePlan:
    """How to turn the page's top-level ``entries`` into ``blocks`` with the fewest writes:
    unchanged blocks stay, a changed block of the same type without children is updated in
    place, the rest are inserted next to their preceding sibling, and blocks no longer
    wanted are deleted (after the inserts)."""
    old = [dict(e) for e in entries]
    fps = [block_fingerprint(b) for b in blocks]
    matcher = difflib.SequenceMatcher(None, [str(e["fp"]) for e in old], fps, autojunk=False)
    slots: list[Slot] = []
    deletes: list[dict[str, Any]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            slots.extend(Slot(old[i], None) for i in range(i1, i2))
            continue
        olds, news = old[i1:i2], list(blocks[j1:j2])
        for k in range(max(len(olds), len(news))):
            entry = olds[k] if k < len(olds) else None
            block = news[k] if k < len(news) else None
            if entry is not None and block is not None and _updatable(entry, block):
                slots.append(Slot(entry, block))
                continue
            if block is not None:
                slots.append(Slot(None, block))
            if entry is not None:
                deletes.append(entry)
    # Notion inserts only after a sibling: a new first block takes over the old first block
    # when it can (updated in place), else the page is rebuilt below its old blocks (all
    # inserted, then the old ones deleted: still never fewer entries).
    if slots and slots[0].entry is None and any(s.entry is not None for s in slots):
        first = old[0]
        assert slots[0].block is not None
        if _updatable(first, slots[0].block):
            rest: list[Slot] = []
            for slot in slots[1:]:
                if slot.entry is not None and slot.entry["id"] == first["id"]:
                    target = slot.block or _block_for(slot, blocks, fps, first)
                    rest.append(Slot(None, target))
                else:
                    rest.append(slot)
            slots = [Slot(first, slots[0].block), *rest]
            deletes = [d for d in deletes if d["id"] != first["id"]]
        else:
            slots = [Slot(None, b) for b in blocks]
            deletes = old
    return ChangePlan(slots, deletes)


def _block_for(
    slot: Slot, blocks: Sequence[Block], fps: Sequence[str], entry: Mapping[str, Any]
) -> Block:
    """The wanted block a kept ``slot`` stands for (its fingerprint is the entry's)."""
    return blocks[fps.index(str(entry["fp"]))]


def _index_after(entries: Sequence[Mapping[str, Any]], block_id: str | None) -> int:
    if block_id is None:
        return len(entries)
    for i, entry in enumerate(entries):
        if entry["id"] == block_id:
            return i + 1
    return len(entries)


def _page_hash(page: Mapping[str, Any], schema: PageSchema = RELEASE_NOTES_SCHEMA) -> str:
    props = page.get("properties") or {}
    return _plain(props.get(schema.hash_property, {}).get("rich_text"))


def _page_status(page: Mapping[str, Any]) -> str | None:
    select = ((page.get("properties") or {}).get("Status") or {}).get("select") or {}
    name = select.get("name")
    return str(name) if name is not None else None


class SchemaCache:
    """Data sources whose schema a publisher checked, per process, for ``ttl_s`` seconds:
    a publish then skips the two discovery requests."""

    def __init__(
        self, ttl_s: float = 600.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[str, float]] = {}

    def get(self, target: str) -> str | None:
        with self._lock:
            hit = self._seen.get(target)
            if hit is None or self._clock() - hit[1] > self.ttl_s:
                return None
            return hit[0]

    def put(self, target: str, data_source_id: str) -> None:
        with self._lock:
            self._seen[target] = (data_source_id, self._clock())

    def forget(self, target: str) -> None:
        with self._lock:
            self._seen.pop(target, None)


# --- the publisher --------------------------------------------------------------------------


def _rich_text_value(text: str) -> list[dict[str, Any]]:
    return plain_rich_text(text)[:100]


def _app_option(app: str | None) -> str | None:
    """The App select option: Notion forbids commas in option names."""
    if not app:
        return None
    return " ".join(app.replace(",", " ").split())[:100] or None


def _plain(items: Any) -> str:
    if not isinstance(items, list):
        return ""
    return "".join(str(i.get("plain_text", "")) for i in items if isinstance(i, dict))


_SSL_LOCK = threading.Lock()
_SSL_CONTEXT: ssl.SSLContext | None = None


def shared_ssl_context() -> ssl.SSLContext:
    """One TLS context per process (httpx's defaults: certifi's CAs, ``SSL_CERT_FILE`` /
    ``SSL_CERT_DIR`` honoured) for every publisher's own HTTP client.

    Each ``httpx.Client()`` otherwise loads the CA bundle into a context of its own: about
    0.8 MiB of native memory and 28 ms of CPU per publish, and notion-client's ``Client``
    holds its HTTP client in a reference cycle (its endpoints point back at it), so that
    memory was only returned at the next *full* cyclic collection: a job worker's RSS grew
    ~0.3-0.4 MiB per publish between them (see benchmarks/worker_memory.py).
    """
    global _SSL_CONTEXT
    with _SSL_LOCK:
        if _SSL_CONTEXT is None:
            _SSL_CONTEXT = httpx.create_ssl_context()
        return _SSL_CONTEXT


class NotionPublisher:
    """Publishes pages (a :class:`PageSpec`; release notes: :class:`PageContent`) to one
    Notion data source. Not a ``Client`` context: close it with :meth:`close` or
    ``with NotionPublisher(...) as publisher:``."""

    def __init__(
        self,
        config: NotionConfig,
        *,
        limiter: RateLimiter | None = None,
        http_client: httpx.Client | None = None,
        schema_cache: SchemaCache | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.schema = config.schema
        self.limiter: RateLimiter = limiter or TokenBucket(config.requests_per_second, config.burst)
        self.schema_cache = schema_cache
        self._clock = clock
        self._sleep = sleep
        self._ledgers: dict[str, Ledger] = {}
        self.retry_after_waits: list[float] = []
        self.requests_sent = 0
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(verify=shared_ssl_context())
        # Counted and rate-limited per HTTP request, so notion-client's retries are too.
        # Removed again by close(): the hook is a reference cycle (client -> publisher).
        self._http.event_hooks["request"] = [*self._http.event_hooks["request"], self._on_request]
        options: dict[str, Any] = {
            "auth": config.token,
            "notion_version": NOTION_VERSION,
            "timeout_ms": int(config.timeout_s * 1000),
            "retry": RetryOptions(
                max_retries=config.max_retries,
                initial_retry_delay_ms=config.initial_retry_delay_ms,
                max_retry_delay_ms=config.max_retry_delay_ms,
            ),
            "logger": logging.getLogger("release_notes.notion.client"),
            "log_level": logging.WARNING,
        }
        if config.base_url:
            options["base_url"] = config.base_url.rstrip("/")
        # Injected rather than ``with Client(...)``, which would swap in a fresh httpx.Client
        # without our hooks.
        self.client = Client(client=self._http, **options)
        self._data_source_id = config.data_source_id
        self._schema_verified = False
        self._schema_target = config.data_source_id or config.database_id or ""
        cached = schema_cache.get(self._schema_target) if schema_cache else None
        if cached is not None:
            self._data_source_id = cached
            self._schema_verified = True

    def _on_request(self, request: httpx.Request) -> None:
        self.limiter.acquire()
        self.requests_sent += 1

    def close(self) -> None:
        """Close the HTTP client (when it is ours) and unhook this publisher from it, so the
        publisher is freed as soon as it is dropped, not at the next full cyclic collection
        (an injected client would otherwise also keep every publisher's hook)."""
        hooks = self._http.event_hooks["request"]
        if self._on_request in hooks:
            self._http.event_hooks["request"] = [h for h in hooks if h != self._on_request]
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> NotionPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # calls -----------------------------------------------------------------------------

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """One request. A 429 with a short ``Retry-After`` is waited out here (every worker
        sharing the limiter pauses with it) and the same request sent again: a 429 means
        Notion did nothing, so that is safe even for a create or an append."""
        tries = 0
        while True:
            try:
                return cast(dict[str, Any], fn(*args, **kwargs))
            except (NotionClientErrorBase, httpx.TransportError) as exc:
                error, cause = classify_error(exc), exc
            if (
                isinstance(error, TransientNotionError)
                and error.status == 429
                and tries < self.config.retry_after_tries
                and (error.retry_after or 1.0) <= self.config.retry_after_max_s
            ):
                tries += 1
                wait = error.retry_after if error.retry_after is not None else 1.0
                self.limiter.pause(wait)
                self.retry_after_waits.append(wait)
                self._sleep(wait)
                continue
            raise error from cause

    def data_source_id(self) -> str:
        """The data source to publish to: configured, or the database's first one."""
        if self._data_source_id is None:
            assert self.config.database_id is not None
            db = self._call(self.client.databases.retrieve, self.config.database_id)
            sources = db.get("data_sources") or []
            if not sources:
                raise PermanentNotionError(
                    f"database {self.config.database_id} has no data source", code="schema"
                )
            self._data_source_id = str(sources[0]["id"])
        return self._data_source_id

    # schema ----------------------------------------------------------------------------

    def check_schema(self) -> SchemaReport:
        """Whether the integration can reach the data source and it has every property.

        A permanent error (no access, unknown id) is reported, not raised; a transient one
        is raised.
        """
        try:
            return self._schema_report()
        except PermanentNotionError as exc:
            return SchemaReport(
                accessible=False, data_source_id=self._data_source_id, error=str(exc)
            )

    def _schema_report(self) -> SchemaReport:
        ds_id = self.data_source_id()
        ds = self._call(self.client.data_sources.retrieve, ds_id)
        props: Mapping[str, Any] = ds.get("properties") or {}
        title = next((n for n, p in props.items() if p.get("type") == "title"), None)
        required = self.schema.properties
        missing = tuple(n for n in required if n not in props)
        wrong = {
            n: (kind, str(props[n].get("type")))
            for n, kind in required.items()
            if n in props and props[n].get("type") != kind
        }
        status = props.get("Status")
        missing_options: tuple[str, ...] = ()
        if status is not None and status.get("type") == "select":
            have = {o.get("name") for o in status.get("select", {}).get("options", [])}
            missing_options = tuple(o for o in STATUS_OPTIONS if o not in have)
        report = SchemaReport(
            accessible=True,
            data_source_id=ds_id,
            missing=missing,
            wrong_type=wrong,
            title_property=title,
            missing_status_options=missing_options,
        )
        self._schema_verified = report.ok
        return report

    def init_schema(self) -> SchemaReport:
        """Add missing properties (renaming the title property to "Version" if needed).

        Properties of the wrong type are not converted (that could destroy data): they are
        reported, and :class:`PermanentNotionError` is raised.
        """
        report = self.check_schema()
        if not report.accessible:
            raise PermanentNotionError(report.error or "data source not accessible")
        if report.wrong_type:
            raise PermanentNotionError(
                "properties of the wrong type: "
                + ", ".join(f"{n} is {a}, expected {e}" for n, (e, a) in report.wrong_type.items()),
                code="schema",
            )
        if report.ok:
            return report
        update: dict[str, Any] = {}
        for name in report.missing:
            kind = self.schema.properties[name]
            if kind == "title":
                if report.title_property is not None:
                    update[report.title_property] = {"name": name}
                else:
                    update[name] = {"title": {}}
            elif name == "Status":
                update[name] = {"select": {"options": [{"name": o} for o in STATUS_OPTIONS]}}
            elif kind == "number":
                update[name] = {"number": {"format": "number"}}
            else:
                update[name] = {kind: {}}
        if report.missing_status_options and "Status" not in update:
            update["Status"] = {
                "select": {"options": [{"name": o} for o in report.missing_status_options]}
            }
        self._call(self.client.data_sources.update, report.data_source_id, properties=update)
        return self.check_schema()

    def _ensure_schema(self) -> str:
        ds_id = self.data_source_id()
        if not self._schema_verified:
            report = self._schema_report()  # raises Notion's own error when not accessible
            if report.missing and set(report.missing) <= ADDED_PROPERTIES:
                # A property this version added: adding it changes nothing people wrote.
                self._call(
                    self.client.data_sources.update,
                    ds_id,
                    properties={n: {self.schema.properties[n]: {}} for n in report.missing},
                )
                report = self._schema_report()
            if not report.ok and self.schema.auto_init and not report.wrong_type:
                report = self.init_schema()
            if not report.ok:
                problems = [f"missing {', '.join(report.missing)}"] if report.missing else []
                problems += [f"{n} is {a}, expected {e}" for n, (e, a) in report.wrong_type.items()]
                if report.missing_status_options:
                    problems.append(
                        "Status lacks options " + ", ".join(report.missing_status_options)
                    )
                raise PermanentNotionError(
                    f"the Notion data source does not have the {self.schema.name} schema ("
                    + "; ".join(problems or [report.error or "not accessible"])
                    + "); run init_schema",
                    code="schema",
                )
            if self.schema_cache is not None:
                self.schema_cache.put(self._schema_target, ds_id)
        return ds_id

    # publishing ------------------------------------------------------------------------

    def find_pages(self, page: PageSpec, *, key: str | None = None) -> list[dict[str, Any]]:
        """Live pages for this version (and app) — the page's identity —, or with this
        publish key, oldest first."""
        ds_id = self.data_source_id()
        where: dict[str, Any] = {"and": page.identity()}
        if key:
            where = {"or": [where, {"property": "Publish key", "rich_text": {"equals": key}}]}
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "filter": where,
                "sorts": [{"timestamp": "created_time", "direction": "ascending"}],
                "page_size": 100,
            }
            if cursor:
                kwargs["start_cursor"] = cursor
            result = self._call(self.client.data_sources.query, ds_id, **kwargs)
            found.extend(r for r in result.get("results", []) if r.get("object") == "page")
            cursor = result.get("next_cursor")
            if not result.get("has_more") or not cursor:
                return found

    def _properties(
        self,
        page: PageSpec,
        *,
        status: str,
        hash_value: str | None,
        full: bool,
        key: str | None = None,
    ) -> dict[str, Any]:
        props: dict[str, Any] = page.properties() if full else {}
        props["Status"] = {"select": {"name": status}}
        props[self.schema.hash_property] = {
            "rich_text": _rich_text_value(hash_value) if hash_value else []
        }
        if key:
            props["Publish key"] = {"rich_text": _rich_text_value(key)}
        return props

    def publish(
        self,
        page: PageSpec,
        *,
        blocks: list[Block] | None = None,
        ledger: Ledger | None = None,
    ) -> PublishResult:
        """Bring the note's page up to date. One attempt; raises a classified error.

        ``blocks`` may be given when the caller already converted the note (the same parse
        as its HTML preview); otherwise the Markdown is converted here. ``ledger`` keeps
        what is on the page (block ids and fingerprints) and each step's progress between
        attempts; without one, a per-publisher in-memory ledger is used.
        """
        ledger = ledger if ledger is not None else self._memory_ledger(page)
        before = self.requests_sent
        record = ledger.load()
        page_id: str | None = None
        try:
            ds_id = self._ensure_schema()
            new_hash = page.content_hash()
            for _ in range(2):
                try:
                    result = self._publish_once(page, blocks, ledger, record, ds_id, new_hash)
                except _PageGone:
                    # The recorded page was deleted in Notion: find or create it again.
                    record = PageRecord(key=record.key)
                    ledger.save(record)
                    continue
                page_id = result.page_id
                return replace(result, requests=self.requests_sent - before)
            raise TransientNotionError("the Notion page disappeared twice", code="page_gone")
        except PermanentNotionError:
            if self.schema_cache is not None:  # the schema may be what changed: check again
                self.schema_cache.forget(self._schema_target)
            page_id = page_id or record.page_id
            if page_id is not None:
                self._mark_failed(page_id)
            raise

    def _memory_ledger(self, page: PageSpec) -> Ledger:
        key = json.dumps(page.identity(), sort_keys=True)
        if key not in self._ledgers:
            self._ledgers[key] = MemoryLedger()
        return self._ledgers[key]

    def _publish_once(
        self,
        page: PageSpec,
        blocks: list[Block] | None,
        ledger: Ledger,
        record: PageRecord,
        ds_id: str,
        new_hash: str,
    ) -> PublishResult:
        if not record.key:
            record.key = uuid.uuid4().hex
        trashed: list[str] = []
        action: Literal["created", "updated", "skipped"] = "updated"
        if record.page_id is None:
            found = self._locate(page, record, trashed)
            if found is None:
                self._create(page, record, ledger, ds_id)
                action = "created"
            else:
                record.page_id = str(found["id"])
                record.url = found.get("url")
                record.create_sent_at = None
                record.pending = None
                record.known = False
                record.entries = []
                ledger.save(record)
                if (
                    _page_hash(found, self.schema) == new_hash
                    and _page_status(found) == "Published"
                ):
                    record.notes_hash = new_hash
                    ledger.save(record)
                    return self._result(record, "skipped", new_hash, 0, trashed)
        elif record.recheck_until is not None:
            self._drop_duplicates(page, record, ledger, trashed)
        assert record.page_id is not None
        if record.pending is not None:
            if self._reconcile(record, ledger, new_hash):
                return self._result(record, "skipped", new_hash, 0, trashed)
        elif action != "created" and record.notes_hash == new_hash:
            stored = self._page_or_gone(record.page_id)
            if _page_hash(stored, self.schema) == new_hash and _page_status(stored) == "Published":
                return self._result(record, "skipped", new_hash, 0, trashed)
        if not record.known:
            self._adopt(record, ledger)
        content = blocks if blocks is not None else page.to_blocks()
        self._apply(record, ledger, content)
        record.pending = {"op": "props"}
        ledger.save(record)
        self._page_call(
            record.page_id,
            self.client.pages.update,
            record.page_id,
            properties=self._properties(
                page, status="Published", hash_value=new_hash, full=True, key=record.key
            ),
        )
        record.pending = None
        record.notes_hash = new_hash
        ledger.save(record)
        return self._result(record, action, new_hash, count_blocks(content), trashed)

    def _result(
        self,
        record: PageRecord,
        action: Literal["created", "updated", "skipped"],
        new_hash: str,
        blocks: int,
        trashed: list[str],
    ) -> PublishResult:
        assert record.page_id is not None
        recheck = None
        if record.recheck_until is not None:
            left = record.recheck_until - self._clock()
            recheck = max(1.0, min(self.config.duplicate_check_every_s, left))
        return PublishResult(
            page_id=record.page_id,
            url=record.url,
            action=action,
            notes_hash=new_hash,
            blocks=blocks,
            requests=0,
            trashed_duplicates=tuple(trashed),
            recheck_after=recheck,
        )

    # finding and creating the page ---------------------------------------------------------

    def _locate(
        self, page: PageSpec, record: PageRecord, trashed: list[str]
    ) -> dict[str, Any] | None:
        """The page of this note, found by its publish key or its Version (and App); None
        when a create may go ahead. Waits (:class:`CreateUnconfirmed`) while an earlier
        create is unconfirmed and Notion's search may not show it yet."""
        existing = self.find_pages(page, key=record.key)
        if existing:
            keep = existing[0]
            for duplicate in existing[1:]:
                self._call(self.client.pages.update, duplicate["id"], in_trash=True)
                trashed.append(str(duplicate["id"]))
            return keep
        if record.create_sent_at is not None:
            waited = self._clock() - record.create_sent_at
            settle = self.config.create_settle_s
            if waited < settle:
                raise CreateUnconfirmed(
                    "an earlier attempt's page create is unconfirmed and Notion's search "
                    f"does not show it yet; looking again in {settle - waited:.0f} s before "
                    "creating another",
                    wait_s=settle - waited,
                )
            # A second create: if the first one shows up after all, the later publishes
            # look for it and trash it.
            record.recheck_until = self._clock() + self.config.duplicate_watch_s
        return None

    def _create(self, page: PageSpec, record: PageRecord, ledger: Ledger, ds_id: str) -> None:
        record.create_sent_at = self._clock()
        record.pending = {"op": "create"}
        ledger.save(record)
        try:
            created = self._call(
                self.client.pages.create,
                parent={"type": "data_source_id", "data_source_id": ds_id},
                properties=self._properties(
                    page, status="Publishing", hash_value=None, full=True, key=record.key
                ),
            )
        except NotionError as exc:
            if not maybe_applied(exc):  # Notion refused it: no page was made
                record.create_sent_at = None
                record.pending = None
                ledger.save(record)
            raise
        record.page_id = str(created["id"])
        record.url = created.get("url")
        record.create_sent_at = None
        record.pending = None
        record.entries = []
        record.known = True
        record.notes_hash = None
        ledger.save(record)

    def _drop_duplicates(
        self, page: PageSpec, record: PageRecord, ledger: Ledger, trashed: list[str]
    ) -> None:
        """After a second create: trash any other page with this note's key or version."""
        assert record.recheck_until is not None
        checked_at = self._clock()
        for other in self.find_pages(page, key=record.key):
            if str(other["id"]) != record.page_id:
                self._call(self.client.pages.update, other["id"], in_trash=True)
                trashed.append(str(other["id"]))
        if checked_at >= record.recheck_until:
            record.recheck_until = None
            ledger.save(record)

    def _page_or_gone(self, page_id: str) -> dict[str, Any]:
        try:
            stored = self._call(self.client.pages.retrieve, page_id)
        except PermanentNotionError as exc:
            if exc.status == 404:
                raise _PageGone from exc
            raise
        if stored.get("in_trash") or stored.get("archived"):
            raise _PageGone
        return stored

    def _page_call(
        self, page_id: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        """A write to the page or one of its blocks; a deleted page raises :class:`_PageGone`
        (the page is looked up once to tell that from a bad request)."""
        try:
            return self._call(fn, *args, **kwargs)
        except PermanentNotionError as exc:
            if exc.status not in (400, 404):
                raise
            self._page_or_gone(page_id)
            raise

    # what is on the page -------------------------------------------------------------------

    def _list_top(self, page_id: str) -> list[dict[str, Any]]:
        """The page's live top-level blocks (not their children), in order."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            kwargs: dict[str, Any] = {"page_size": 100}
            if cursor:
                kwargs["start_cursor"] = cursor
            result = self._page_call(page_id, self.client.blocks.children.list, page_id, **kwargs)
            out.extend(result.get("results", []))
            cursor = result.get("next_cursor")
            if not result.get("has_more") or not cursor:
                return out

    def _adopt(self, record: PageRecord, ledger: Ledger) -> None:
        """A page this ledger has not written (published before ledgers, or found after an
        unconfirmed create): read its blocks, children included, and fingerprint them, so
        the blocks that already say the right thing stay."""
        assert record.page_id is not None
        try:
            tree = self.fetch_blocks(record.page_id)
        except PermanentNotionError as exc:
            if exc.status == 404:
                raise _PageGone from exc
            raise
        record.entries = [_entry(str(b["id"]), b) for b in tree]
        record.known = True
        ledger.save(record)

    def _reconcile(self, record: PageRecord, ledger: Ledger, new_hash: str) -> bool:
        """Settle the step an earlier attempt left unconfirmed. True when that step was the
        final properties write and it did land (nothing left to do)."""
        assert record.page_id is not None and record.pending is not None
        op = record.pending.get("op")
        if op == "props":
            stored = self._page_or_gone(record.page_id)
            if _page_hash(stored, self.schema) == new_hash and _page_status(stored) == "Published":
                record.pending = None
                record.notes_hash = new_hash
                ledger.save(record)
                return True
        elif op in ("update", "delete"):
            target = record.pending.get("id")
            for entry in record.entries:
                if entry["id"] == target:
                    entry["fp"] = STALE
        elif op in ("append", "reread"):
            self._reread(record)
        record.pending = None
        ledger.save(record)
        return False

    def _reread(self, record: PageRecord) -> None:
        """Read the page's top-level block ids: keep the known ones still there, adopt the
        blocks of an append whose response was lost, and mark any other block unknown."""
        assert record.page_id is not None
        pending = record.pending or {}
        live = self._list_top(record.page_id)
        known = {e["id"]: e for e in record.entries}
        ids = [str(b["id"]) for b in live]
        adopt: dict[str, dict[str, Any]] = {}
        sent: list[dict[str, Any]] = list(pending.get("entries") or [])
        if pending.get("op") == "append" and sent:
            after = pending.get("after")
            if after is None:
                start = len(ids) - len(sent)
            else:
                start = ids.index(after) + 1 if after in ids else -1
            window = ids[start : start + len(sent)] if start >= 0 else []
            if len(window) == len(sent) and all(
                i not in known and live[start + n].get("type") == sent[n]["type"]
                for n, i in enumerate(window)
            ):
                adopt = {i: {**sent[n], "id": i} for n, i in enumerate(window)}
        entries = []
        for block in live:
            block_id = str(block["id"])
            if block_id in known:
                entries.append(known[block_id])
            elif block_id in adopt:
                entries.append(adopt[block_id])
            else:
                entries.append(
                    {
                        "id": block_id,
                        "fp": UNKNOWN,
                        "type": str(block.get("type")),
                        "kids": bool(block.get("has_children")),
                    }
                )
        record.entries = entries

    # writing only what changed -------------------------------------------------------------

    def _apply(self, record: PageRecord, ledger: Ledger, content: Sequence[Block]) -> None:
        """Make the page's top-level blocks ``content``: update changed blocks in place,
        insert new ones after their preceding sibling, and only then delete the removed
        ones, so a reader never sees fewer entries than before. Progress is saved after
        every request."""
        assert record.page_id is not None
        plan = plan_changes(record.entries, content)
        prev: str | None = None
        run: list[Block] = []
        for slot in plan.slots:
            if slot.entry is None:
                assert slot.block is not None
                run.append(slot.block)
                continue
            if run:
                prev = self._insert(record, ledger, prev, run)
                run = []
            if slot.block is not None:  # update in place
                self._update_block(record, ledger, slot.entry, slot.block)
            prev = str(slot.entry["id"])
        if run:
            self._insert(record, ledger, prev, run)
        for entry in plan.deletes:
            self._delete_block(record, ledger, entry)

    def _insert(
        self, record: PageRecord, ledger: Ledger, after: str | None, blocks: list[Block]
    ) -> str:
        """Insert ``blocks`` after the block ``after`` (at the end when None); returns the
        id of the last one inserted."""
        assert record.page_id is not None
        fps = [block_fingerprint(b) for b in blocks]
        last = after
        offset = 0
        for request in plan_appends(blocks):
            deep = {index for index, _ in request.followups}
            sent = [
                {
                    "fp": PARTIAL if i in deep else fps[offset + i],
                    "type": str(child["type"]),
                    "kids": i in deep or bool(block_children(child)),
                }
                for i, child in enumerate(request.children)
            ]
            record.pending = {"op": "append", "after": last, "entries": sent}
            ledger.save(record)
            kwargs: dict[str, Any] = {"children": request.children}
            if last is not None:
                kwargs["after"] = last
            try:
                result = self._page_call(
                    record.page_id, self.client.blocks.children.append, record.page_id, **kwargs
                )
            except NotionError as exc:
                if not maybe_applied(exc):  # nothing was appended: no need to look
                    record.pending = None
                    ledger.save(record)
                if isinstance(exc, PermanentNotionError):
                    # The page itself is there (_page_call looked): only the sibling can
                    # have gone.
                    self._unless_block_gone(record, ledger, exc, target_is_block=False)
                raise
            ids = [str(r["id"]) for r in result.get("results", [])]
            if len(ids) != len(request.children):
                record.pending = {"op": "reread"}
                ledger.save(record)
                raise TransientNotionError(
                    f"Notion returned {len(ids)} blocks for {len(request.children)} appended",
                    code="short_append",
                )
            where = _index_after(record.entries, last)
            new_entries = [{**s, "id": i} for s, i in zip(sent, ids, strict=True)]
            record.entries[where:where] = new_entries
            record.pending = None
            ledger.save(record)
            for index, rest in request.followups:
                # Deeper levels go to the id Notion returned; the block counts as written
                # once all of them are there (a failure leaves it PARTIAL: replaced later).
                self._append_all(ids[index], rest)
                new_entries[index]["fp"] = fps[offset + index]
                ledger.save(record)
            offset += len(request.children)
            last = ids[-1]
        assert last is not None
        return last

    def _update_block(
        self, record: PageRecord, ledger: Ledger, entry: dict[str, Any], block: Block
    ) -> None:
        assert record.page_id is not None
        kind = str(block["type"])
        body = {k: v for k, v in block[kind].items() if k != "children"}
        record.pending = {"op": "update", "id": entry["id"]}
        ledger.save(record)
        try:
            self._page_call(record.page_id, self.client.blocks.update, entry["id"], **{kind: body})
        except PermanentNotionError as exc:
            self._unless_block_gone(record, ledger, exc)
        for stored in record.entries:
            if stored["id"] == entry["id"]:
                stored["fp"] = block_fingerprint(block)
        record.pending = None
        ledger.save(record)

    def _unless_block_gone(
        self,
        record: PageRecord,
        ledger: Ledger,
        error: PermanentNotionError,
        *,
        target_is_block: bool = True,
    ) -> None:
        """A block this ledger knows was deleted in Notion (by a person): the next attempt
        reads the page again instead of failing for good. Any other refusal is raised."""
        text = error.message.lower()
        if (error.status == 404 and target_is_block) or (
            error.status == 400 and ("archived" in text or "not a child" in text)
        ):
            record.pending = {"op": "reread"}
            ledger.save(record)
            raise TransientNotionError(
                f"a block of the page changed in Notion meanwhile ({error.message}); the "
                "next attempt reads the page again",
                status=error.status,
                code="page_changed",
            ) from error
        raise error

    def _delete_block(self, record: PageRecord, ledger: Ledger, entry: dict[str, Any]) -> None:
        assert record.page_id is not None
        record.pending = {"op": "delete", "id": entry["id"]}
        ledger.save(record)
        try:
            self._page_call(record.page_id, self.client.blocks.delete, entry["id"])
        except PermanentNotionError as exc:
            # Already gone (an earlier attempt's delete landed, or a person removed it).
            if exc.status not in (400, 404):
                raise
        record.entries = [e for e in record.entries if e["id"] != entry["id"]]
        record.pending = None
        ledger.save(record)

    def _mark_failed(self, page_id: str) -> None:
        try:
            self._call(
                self.client.pages.update,
                page_id,
                properties={"Status": {"select": {"name": "Failed"}}},
            )
        except NotionError as exc:  # best effort: the original error matters more
            _log.warning("could not mark Notion page %s Failed: %s", page_id, exc)

    def _append_all(self, parent_id: str, blocks: Sequence[Block]) -> None:
        for request in plan_appends(blocks):
            result = self._call(
                self.client.blocks.children.append, parent_id, children=request.children
            )
            if not request.followups:
                continue
            ids = [str(r["id"]) for r in result.get("results", [])]
            if len(ids) != len(request.children):
                raise TransientNotionError(
                    f"Notion returned {len(ids)} blocks for {len(request.children)} appended",
                    code="short_append",
                )
            for index, rest in request.followups:
                self._append_all(ids[index], rest)

    # reading back ----------------------------------------------------------------------

    def fetch_blocks(self, block_id: str) -> list[Block]:
        """Every live block under a page or block, children attached in the type object."""
        out: list[Block] = []
        cursor: str | None = None
        while True:
            kwargs: dict[str, Any] = {"page_size": 100}
            if cursor:
                kwargs["start_cursor"] = cursor
            result = self._call(self.client.blocks.children.list, block_id, **kwargs)
            for block in result.get("results", []):
                if block.get("has_children"):
                    block = with_children(block, self.fetch_blocks(str(block["id"])))
                out.append(block)
            cursor = result.get("next_cursor")
            if not result.get("has_more") or not cursor:
                return out


def request_bound(top_level_blocks: int) -> int:
    """The efficiency target for a note of ``N`` shallow top-level blocks: ceil(N/100) + 5."""
    return math.ceil(top_level_blocks / MAX_CHILDREN) + 5
