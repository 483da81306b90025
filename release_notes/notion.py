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

import hashlib
import json
import logging
import math
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, cast

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
    "REQUIRED_PROPERTIES",
    "STATUS_OPTIONS",
    "NotionConfig",
    "NotionError",
    "NotionPublisher",
    "PageContent",
    "PermanentNotionError",
    "PublishResult",
    "SchemaReport",
    "TokenBucket",
    "TransientNotionError",
    "classify_error",
    "notes_hash",
    "plan_appends",
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
}

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

    def __post_init__(self) -> None:
        if not self.token:
            raise ValueError("a Notion token is required")
        if not (self.database_id or self.data_source_id):
            raise ValueError("give database_id or data_source_id")


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


@dataclass(frozen=True)
class PublishResult:
    page_id: str
    url: str | None
    action: Literal["created", "updated", "skipped"]
    notes_hash: str
    blocks: int
    requests: int
    trashed_duplicates: tuple[str, ...] = ()


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
    """Publishes :class:`PageContent` to one Notion data source. Not a ``Client`` context:
    close it with :meth:`close` or ``with NotionPublisher(...) as publisher:``."""

    def __init__(
        self,
        config: NotionConfig,
        *,
        limiter: TokenBucket | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.config = config
        self.limiter = limiter or TokenBucket(config.requests_per_second, config.burst)
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
        try:
            return cast(dict[str, Any], fn(*args, **kwargs))
        except (NotionClientErrorBase, httpx.TransportError) as exc:
            raise classify_error(exc) from exc

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
        missing = tuple(n for n in REQUIRED_PROPERTIES if n not in props)
        wrong = {
            n: (kind, str(props[n].get("type")))
            for n, kind in REQUIRED_PROPERTIES.items()
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
            kind = REQUIRED_PROPERTIES[name]
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
            if not report.ok:
                problems = [f"missing {', '.join(report.missing)}"] if report.missing else []
                problems += [f"{n} is {a}, expected {e}" for n, (e, a) in report.wrong_type.items()]
                if report.missing_status_options:
                    problems.append(
                        "Status lacks options " + ", ".join(report.missing_status_options)
                    )
                raise PermanentNotionError(
                    "the Notion data source does not have the release-notes schema ("
                    + "; ".join(problems or [report.error or "not accessible"])
                    + "); run init_schema",
                    code="schema",
                )
        return ds_id

    # publishing ------------------------------------------------------------------------

    def find_pages(self, page: PageContent) -> list[dict[str, Any]]:
        """Live pages for this version (and app), oldest first."""
        ds_id = self.data_source_id()
        conditions: list[dict[str, Any]] = [
            {"property": "Version", "title": {"equals": page.version}}
        ]
        app = _app_option(page.app)
        if app:
            conditions.append({"property": "App", "select": {"equals": app}})
        else:
            conditions.append({"property": "App", "select": {"is_empty": True}})
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "filter": {"and": conditions},
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
        self, page: PageContent, *, status: str, hash_value: str | None, full: bool
    ) -> dict[str, Any]:
        props: dict[str, Any] = {}
        if full:
            link = (
                page.release_link
                if page.release_link and len(page.release_link) <= MAX_LINK_URL
                else None
            )
            props.update(
                {
                    "Version": {"title": _rich_text_value(page.version)},
                    "App": {"select": {"name": app} if (app := _app_option(page.app)) else None},
                    "Release date": {
                        "date": {"start": page.release_date.isoformat()}
                        if page.release_date
                        else None
                    },
                    "Commits": {"number": page.commits},
                    "Breaking changes": {"number": page.breaking_changes},
                    "Release link": {"url": link},
                }
            )
        props["Status"] = {"select": {"name": status}}
        props["Notes hash"] = {"rich_text": _rich_text_value(hash_value) if hash_value else []}
        return props

    def publish(self, page: PageContent, *, blocks: list[Block] | None = None) -> PublishResult:
        """Create or replace the note's page. One attempt; raises a classified error.

        ``blocks`` may be given when the caller already converted the note (the same parse
        as its HTML preview); otherwise the Markdown is converted here.
        """
        before = self.requests_sent
        page_id: str | None = None
        try:
            ds_id = self._ensure_schema()
            new_hash = notes_hash(page)
            existing = self.find_pages(page)
            keep = existing[0] if existing else None
            trashed: list[str] = []
            for duplicate in existing[1:]:
                self._call(self.client.pages.update, duplicate["id"], in_trash=True)
                trashed.append(str(duplicate["id"]))
            if keep is not None:
                page_id = str(keep["id"])
                props = keep.get("properties", {})
                stored_hash = _plain(props.get("Notes hash", {}).get("rich_text"))
                stored_status = (props.get("Status", {}).get("select") or {}).get("name")
                if stored_hash == new_hash and stored_status == "Published":
                    return PublishResult(
                        page_id=page_id,
                        url=keep.get("url"),
                        action="skipped",
                        notes_hash=new_hash,
                        blocks=0,
                        requests=self.requests_sent - before,
                        trashed_duplicates=tuple(trashed),
                    )
                # Converted only now: an unchanged note is skipped without the work.
                content = blocks if blocks is not None else markdown_to_blocks(page.markdown)
                self._call(
                    self.client.pages.update,
                    page_id,
                    properties=self._properties(
                        page, status="Publishing", hash_value=None, full=True
                    ),
                    erase_content=True,
                )
                url = keep.get("url")
                self._append_all(page_id, content)
                action: Literal["created", "updated"] = "updated"
            else:
                content = blocks if blocks is not None else markdown_to_blocks(page.markdown)
                first, next_index = (
                    _take_request(content, 0, _Shapes(), whole_only=True)
                    if content
                    else (AppendRequest([], []), 0)
                )
                created = self._call(
                    self.client.pages.create,
                    parent={"type": "data_source_id", "data_source_id": ds_id},
                    properties=self._properties(
                        page, status="Publishing", hash_value=None, full=True
                    ),
                    children=first.children,
                )
                page_id = str(created["id"])
                url = created.get("url")
                self._append_all(page_id, content[next_index:])
                action = "created"
            self._call(
                self.client.pages.update,
                page_id,
                properties=self._properties(
                    page, status="Published", hash_value=new_hash, full=False
                ),
            )
            return PublishResult(
                page_id=page_id,
                url=url,
                action=action,
                notes_hash=new_hash,
                blocks=count_blocks(content),
                requests=self.requests_sent - before,
                trashed_duplicates=tuple(trashed),
            )
        except PermanentNotionError:
            if page_id is not None:
                self._mark_failed(page_id)
            raise

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
