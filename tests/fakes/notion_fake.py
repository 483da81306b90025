"""A local HTTP fake of the Notion API (version 2025-09-03), for tests and benchmarks.

Serves the endpoints the publisher uses on ``127.0.0.1`` (random port) from a background
thread, so the real ``notion_client.Client`` talks to it over loopback::

    with NotionFake() as fake:
        client = Client(auth=fake.token, base_url=fake.base_url)
        ...

It keeps databases, data sources, pages and blocks in memory, answers with Notion-shaped
objects and cursor pagination, and rejects what Notion rejects with Notion's error body
(``{"object": "error", "status": 400, "code": "validation_error", "message": ...}``):
children arrays over 100, more than two levels of nesting, more than 1000 blocks or
500 KB in one request (413), ``text.content`` over 2000 UTF-16 units, rich-text arrays
over 100, link URLs over 2000 characters or not absolute, unknown parents (404), unknown
properties, wrong property types, edits to trashed pages/blocks, a missing
``Notion-Version`` header, a bad token (401) and an unknown code language.

Faults are queued on demand (:class:`Fault`): 429 with ``Retry-After``, 500, 502 (an
HTML body, as a proxy sends), 503, 504, 529 ``service_overload``, slow responses, and
"write applied but response lost". Every request is recorded (:attr:`NotionFake.requests`,
with the time it arrived), and ``after_request`` hooks see the state after each one.

Notion's search may lag behind a create: with ``query_lag`` set, a data source query does
not show a page until that long (on the fake's ``clock``) after it was created; retrieving
the page by id shows it at once.

Self-contained on purpose: it shares no code with the module under test.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

API_VERSION = "2025-09-03"
MAX_CHILDREN = 100
MAX_NESTING = 2
MAX_BLOCKS_PER_REQUEST = 1000
MAX_BODY_BYTES = 500_000
MAX_TEXT_UNITS = 2000
MAX_RICH_TEXT = 100
MAX_URL = 2000
BOT_USER = {"object": "user", "id": "00000000-0000-4000-8000-0000000000b0"}

CODE_LANGUAGES = frozenset(
    [
        "abap",
        "abc",
        "agda",
        "arduino",
        "assembly",
        "bash",
        "basic",
        "bnf",
        "c",
        "c#",
        "c++",
        "clojure",
        "coffeescript",
        "coq",
        "css",
        "dart",
        "dhall",
        "diff",
        "docker",
        "ebnf",
        "elixir",
        "elm",
        "erlang",
        "f#",
        "flow",
        "fortran",
        "gherkin",
        "glsl",
        "go",
        "graphql",
        "groovy",
        "haskell",
        "hcl",
        "html",
        "idris",
        "java",
        "javascript",
        "json",
        "julia",
        "kotlin",
        "latex",
        "less",
        "lisp",
        "livescript",
        "lua",
        "makefile",
        "markdown",
        "markup",
        "matlab",
        "mathematica",
        "mermaid",
        "nix",
        "objective-c",
        "ocaml",
        "pascal",
        "perl",
        "php",
        "powershell",
        "prolog",
        "protobuf",
        "purescript",
        "python",
        "r",
        "racket",
        "reason",
        "ruby",
        "rust",
        "sass",
        "scala",
        "scheme",
        "scss",
        "shell",
        "smalltalk",
        "solidity",
        "sql",
        "swift",
        "toml",
        "typescript",
        "vb.net",
        "verilog",
        "vhdl",
        "xml",
        "yaml",
        "java/c/c++/c#",
        "webassembly",
    ]
) | {"ascii art", "llvm ir", "notion formula", "plain text", "visual basic"}

RICH_TEXT_BLOCKS = frozenset(
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
CHILD_BEARING = frozenset(
    {"paragraph", "bulleted_list_item", "numbered_list_item", "to_do", "quote", "toggle", "callout"}
)
BLOCK_TYPES = RICH_TEXT_BLOCKS | {"divider", "table", "table_row"}
PROPERTY_TYPES = frozenset(
    {
        "title",
        "rich_text",
        "number",
        "select",
        "multi_select",
        "date",
        "url",
        "checkbox",
        "email",
        "phone_number",
    }
)
ANNOTATION_KEYS = ("bold", "italic", "strikethrough", "underline", "code")


class NotionError(Exception):
    """Raised inside a handler; becomes Notion's error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _validation(message: str) -> NotionError:
    return NotionError(400, "validation_error", message)


def _not_found(kind: str, object_id: str) -> NotionError:
    return NotionError(
        404,
        "object_not_found",
        f"Could not find {kind} with ID: {object_id}. "
        "Make sure the relevant pages and databases are shared with your integration.",
    )


_T = TypeVar("_T")


def _found(objects: Mapping[str, _T], kind: str, object_id: str) -> _T:
    """``objects[object_id]``, or Notion's 404 for a ``kind`` it does not know."""
    found = objects.get(object_id)
    if found is None:
        raise _not_found(kind, object_id)
    return found


def _archived() -> NotionError:
    return _validation(
        "Can't edit block that is archived. You must unarchive the block before editing."
    )


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _norm_id(raw: str) -> str:
    compact = raw.replace("-", "").lower()
    if re.fullmatch(r"[0-9a-f]{32}", compact):
        c = compact
        return f"{c[:8]}-{c[8:12]}-{c[12:16]}-{c[16:20]}-{c[20:]}"
    return raw


def _new_id() -> str:
    return str(uuid.uuid4())


# --- faults -------------------------------------------------------------------------------


@dataclass
class Fault:
    """One queued fault. ``method``/``path`` (a regex searched in the URL path) select requests.

    kinds: ``status`` (answer with an error status instead of processing), ``slow`` (sleep
    ``delay`` seconds; with ``apply`` the request is processed first, so a client that
    times out has still changed state), ``lost`` (process, then drop the connection with no
    response) and ``applied_then_status`` (process, then answer with ``status``). The first
    ``skip`` matching requests pass untouched.
    """

    kind: str
    status: int = 500
    retry_after: str | None = None
    delay: float = 0.0
    apply: bool = True
    method: str | None = None
    path: str | None = None
    times: int = 1
    skip: int = 0

    @classmethod
    def http(cls, status: int, *, retry_after: float | None = None, **match: Any) -> Fault:
        after = None if retry_after is None else str(int(retry_after))
        return cls("status", status=status, retry_after=after, **match)

    @classmethod
    def rate_limited(cls, retry_after: float = 0, **match: Any) -> Fault:
        return cls.http(429, retry_after=retry_after, **match)

    @classmethod
    def slow(cls, delay: float, *, apply: bool = True, **match: Any) -> Fault:
        return cls("slow", delay=delay, apply=apply, **match)

    @classmethod
    def lost_response(cls, **match: Any) -> Fault:
        return cls("lost", **match)

    @classmethod
    def applied_then_error(cls, status: int = 504, **match: Any) -> Fault:
        return cls("applied_then_status", status=status, **match)

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        return self.path is None or re.search(self.path, path) is not None


_FAULT_BODIES = {
    400: ("validation_error", "Injected validation error."),
    401: ("unauthorized", "API token is invalid."),
    403: ("restricted_resource", "Insufficient permissions for this endpoint."),
    404: ("object_not_found", "Could not find object."),
    409: ("conflict_error", "Conflict occurred while saving. Please try again."),
    429: ("rate_limited", "You have been rate limited. Please try again in a few minutes."),
    500: ("internal_server_error", "Unexpected error occurred."),
    503: ("service_unavailable", "Notion is unavailable, please try again later."),
    504: ("gateway_timeout", "Gateway timeout."),
    529: ("service_overload", "Notion is experiencing high load. Please try again later."),
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    status: int = 0
    body_bytes: int = 0
    fault: str | None = None
    at: float = field(default_factory=time.monotonic)  # when it arrived


# --- the HTTP layer -----------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, add=False)

    def do_GET(self) -> None:
        self.server.fake._serve(self)

    do_POST = do_GET
    do_PATCH = do_GET
    do_DELETE = do_GET
    do_PUT = do_GET

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_raw(status, body, "application/json; charset=utf-8", headers)

    def send_raw(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self, fake: NotionFake) -> None:
        self.fake = fake
        self._active: set[socket.socket] = set()
        self._active_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._active_lock:
            if add:
                self._active.add(conn)
            else:
                self._active.discard(conn)

    def drop_all(self) -> None:
        with self._active_lock:
            conns = list(self._active)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


# --- the fake -----------------------------------------------------------------------------


@dataclass
class _Page:
    id: str
    data_source_id: str
    properties: dict[str, Any]
    seq: int
    created: datetime
    edited: datetime
    in_trash: bool = False


@dataclass
class _Block:
    id: str
    parent_id: str
    parent_is_page: bool
    type: str
    body: dict[str, Any]
    created: datetime
    in_trash: bool = False


@dataclass
class _DataSource:
    id: str
    database_id: str
    title: str
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)


class NotionFake:
    """In-memory Notion with an HTTP front end on loopback. Start/stop or use as a context."""

    def __init__(
        self,
        *,
        token: str = "secret_fake_token",
        database_title: str = "Release notes",
        properties: dict[str, dict[str, Any]] | None = None,
        clock: Callable[[], datetime] | None = None,
        query_lag: timedelta = timedelta(0),
    ) -> None:
        self.token = token
        self.clock = clock or (lambda: datetime.now(UTC))
        self.query_lag = query_lag
        self.after_request: list[Callable[[NotionFake, RecordedRequest], None]] = []
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._seq = 0
        self.databases: dict[str, dict[str, Any]] = {}
        self.data_sources: dict[str, _DataSource] = {}
        self.pages: dict[str, _Page] = {}
        self.blocks: dict[str, _Block] = {}
        self.children: dict[str, list[str]] = {}
        self.database_id, self.data_source_id = self.add_database(
            database_title, properties or {"Name": {"title": {}}}
        )
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> NotionFake:
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.drop_all()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> NotionFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "NotionFake is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # test helpers ------------------------------------------------------------------------

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each is used ``times`` times by the first requests it matches."""
        with self._lock:
            self.faults.extend(faults)

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """Requests received (including faulted ones), filtered by method / path regex."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method.upper())
                and (path is None or re.search(path, r.path))
            )

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def add_database(self, title: str, properties: dict[str, dict[str, Any]]) -> tuple[str, str]:
        """Create a database with one data source; ``properties`` as in a schema update."""
        with self._lock:
            db_id, ds_id = _new_id(), _new_id()
            now = self.clock()
            self.databases[db_id] = {"title": title, "data_sources": [ds_id], "created": now}
            ds = _DataSource(id=ds_id, database_id=db_id, title=title)
            self.data_sources[ds_id] = ds
            self._update_schema(ds, properties)
            return db_id, ds_id

    def seed_page(
        self,
        properties: dict[str, Any],
        *,
        data_source_id: str | None = None,
        created: datetime | None = None,
    ) -> str:
        """Create a page directly (as if another client had), with Notion-style properties."""
        with self._lock:
            ds = self.data_sources[data_source_id or self.data_source_id]
            page = self._new_page(ds, properties)
            if created is not None:
                page.created = page.edited = created
            return page.id

    def live_pages(self, data_source_id: str | None = None) -> list[dict[str, Any]]:
        """Pages not in the trash, as Notion page objects, oldest first."""
        with self._lock:
            ds_id = data_source_id or self.data_source_id
            pages = [p for p in self.pages.values() if p.data_source_id == ds_id and not p.in_trash]
            pages.sort(key=lambda p: (p.created, p.seq))
            return [self._page_json(p) for p in pages]

    def block_tree(self, parent_id: str) -> list[dict[str, Any]]:
        """Live blocks under a page or block, as block objects with ``children`` attached."""
        with self._lock:
            out = []
            for child_id in self.children.get(_norm_id(parent_id), []):
                block = self.blocks[child_id]
                if block.in_trash:
                    continue
                obj = self._block_json(block)
                obj["children"] = self.block_tree(child_id)
                out.append(obj)
            return out

    # request handling -------------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        split = urlsplit(handler.path)
        method = handler.command.upper()
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        record = RecordedRequest(method=method, path=split.path, body_bytes=len(raw))
        with self._lock:
            self.requests.append(record)
            fault = self._take_fault(method, split.path)
        if fault is not None:
            record.fault = fault.kind
            if fault.kind == "status":
                self._send_fault_status(handler, record, fault)
                return
            if fault.kind == "slow" and not fault.apply:
                self._stopping.wait(fault.delay)
                record.status = 0
                handler.drop()
                return
        status, payload, headers = self._process(handler, method, split.path, split.query, raw)
        record.status = status
        with self._lock:
            for hook in self.after_request:
                hook(self, record)
        if fault is not None:
            if fault.kind == "lost":
                handler.drop()
                return
            if fault.kind == "applied_then_status":
                self._send_fault_status(handler, record, fault)
                return
            if fault.kind == "slow":
                self._stopping.wait(fault.delay)
        handler.send_json(status, payload, headers)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _send_fault_status(self, handler: _Handler, record: RecordedRequest, fault: Fault) -> None:
        record.status = fault.status
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        if fault.status == 502:
            body = (
                b"<html><head><title>502 Bad Gateway</title></head><body>bad gateway</body></html>"
            )
            handler.send_raw(502, body, "text/html", headers)
            return
        code, message = _FAULT_BODIES.get(fault.status, ("internal_server_error", "Injected."))
        handler.send_json(fault.status, self._error_body(fault.status, code, message), headers)

    @staticmethod
    def _error_body(status: int, code: str, message: str) -> dict[str, Any]:
        return {
            "object": "error",
            "status": status,
            "code": code,
            "message": message,
            "request_id": _new_id(),
        }

    def _process(
        self, handler: _Handler, method: str, path: str, query: str, raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        try:
            auth = handler.headers.get("Authorization", "")
            if auth != f"Bearer {self.token}":
                raise NotionError(401, "unauthorized", "API token is invalid.")
            version = handler.headers.get("Notion-Version")
            if not version:
                raise NotionError(
                    400,
                    "missing_version",
                    "Notion-Version header failed validation: Notion-Version header "
                    "should be defined, instead was `undefined`.",
                )
            if version != API_VERSION:
                raise _validation(
                    f"Notion-Version `{version}` is not supported by this fake; "
                    f"use `{API_VERSION}`."
                )
            if len(raw) > MAX_BODY_BYTES:
                raise NotionError(
                    413,
                    "validation_error",
                    f"Request body too large: {len(raw)} bytes, the limit is 500KB.",
                )
            body: Any = {}
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    raise NotionError(400, "invalid_json", "Error parsing JSON body.") from exc
                if not isinstance(body, dict):
                    raise _validation("body failed validation: body should be an object.")
            params = {k: v[-1] for k, v in parse_qs(query).items()}
            with self._lock:
                return 200, self._route(method, path, params, body), {}
        except NotionError as err:
            return err.status, self._error_body(err.status, err.code, err.message), {}

    _ROUTES: tuple[tuple[str, str, str], ...] = (
        ("GET", r"/v1/databases/([^/]+)", "_get_database"),
        ("GET", r"/v1/data_sources/([^/]+)", "_get_data_source"),
        ("PATCH", r"/v1/data_sources/([^/]+)", "_patch_data_source"),
        ("POST", r"/v1/data_sources/([^/]+)/query", "_query_data_source"),
        ("POST", r"/v1/pages", "_create_page"),
        ("GET", r"/v1/pages/([^/]+)", "_get_page"),
        ("PATCH", r"/v1/pages/([^/]+)", "_patch_page"),
        ("GET", r"/v1/blocks/([^/]+)/children", "_list_children"),
        ("PATCH", r"/v1/blocks/([^/]+)/children", "_append_children"),
        ("GET", r"/v1/blocks/([^/]+)", "_get_block"),
        ("PATCH", r"/v1/blocks/([^/]+)", "_patch_block"),
        ("DELETE", r"/v1/blocks/([^/]+)", "_delete_block"),
    )

    def _route(self, method: str, path: str, params: dict[str, str], body: dict[str, Any]) -> Any:
        for route_method, pattern, name in self._ROUTES:
            match = re.fullmatch(pattern, path.rstrip("/"))
            if match and route_method == method:
                handler: Callable[..., Any] = getattr(self, name)
                return handler(*[_norm_id(g) for g in match.groups()], params=params, body=body)
        raise NotionError(400, "invalid_request_url", "Invalid request URL.")

    # databases and data sources ---------------------------------------------------------

    def _get_database(self, db_id: str, **_: Any) -> dict[str, Any]:
        db = _found(self.databases, "database", db_id)
        stamp = _iso(db["created"])
        return {
            "object": "database",
            "id": db_id,
            "title": [_expand_rich_text({"type": "text", "text": {"content": db["title"]}})],
            "description": [],
            "parent": {"type": "workspace", "workspace": True},
            "is_inline": False,
            "in_trash": False,
            "is_locked": False,
            "created_time": stamp,
            "last_edited_time": stamp,
            "data_sources": [
                {"id": ds, "name": self.data_sources[ds].title} for ds in db["data_sources"]
            ],
            "icon": None,
            "cover": None,
            "url": f"https://www.notion.so/{db_id.replace('-', '')}",
            "public_url": None,
        }

    def _data_source(self, ds_id: str) -> _DataSource:
        return _found(self.data_sources, "data_source", ds_id)

    def _get_data_source(self, ds_id: str, **_: Any) -> dict[str, Any]:
        return self._data_source_json(self._data_source(ds_id))

    def _data_source_json(self, ds: _DataSource) -> dict[str, Any]:
        return {
            "object": "data_source",
            "id": ds.id,
            "title": [_expand_rich_text({"type": "text", "text": {"content": ds.title}})],
            "description": [],
            "parent": {"type": "database_id", "database_id": ds.database_id},
            "database_parent": {"type": "workspace", "workspace": True},
            "properties": json.loads(json.dumps(ds.properties)),
            "archived": False,
            "in_trash": False,
            "is_inline": False,
            "icon": None,
            "cover": None,
            "url": f"https://www.notion.so/{ds.id.replace('-', '')}",
        }

    def _patch_data_source(self, ds_id: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        ds = self._data_source(ds_id)
        unknown = set(body) - {"title", "icon", "properties", "in_trash", "archived", "parent"}
        if unknown:
            raise _validation(f"body failed validation: body.{sorted(unknown)[0]} is not allowed.")
        props = body.get("properties") or {}
        if not isinstance(props, dict):
            raise _validation("body failed validation: body.properties should be an object.")
        self._update_schema(ds, props)
        return self._data_source_json(ds)

    def _update_schema(self, ds: _DataSource, props: dict[str, Any]) -> None:
        # Validate everything first so a rejected update changes nothing.
        plan: list[tuple[str, Any]] = []
        for name, spec in props.items():
            existing = ds.properties.get(name) or next(
                (p for p in ds.properties.values() if p["id"] == name), None
            )
            if spec is None:
                if existing is None:
                    raise _validation(f"{name} is not a property that exists.")
                if existing["type"] == "title":
                    raise _validation("Cannot delete the title property.")
                plan.append((name, None))
                continue
            if not isinstance(spec, dict):
                raise _validation(
                    f"body failed validation: body.properties.{name} should be an object."
                )
            types = [k for k in spec if k in PROPERTY_TYPES]
            others = [
                k for k in spec if k not in PROPERTY_TYPES and k not in ("name", "type", "id")
            ]
            if others:
                raise _validation(
                    f"body failed validation: body.properties.{name}.{others[0]} is not a "
                    "supported property type."
                )
            if len(types) > 1:
                raise _validation(
                    f"body failed validation: body.properties.{name} has more than one type."
                )
            if existing is None and not types:
                raise _validation(
                    f"body failed validation: body.properties.{name} should define a property type."
                )
            if (
                existing is not None
                and existing["type"] == "title"
                and types
                and types[0] != "title"
            ):
                raise _validation("Cannot change the type of the title property.")
            if (
                existing is None
                and types[0] == "title"
                and any(p["type"] == "title" for p in ds.properties.values())
            ):
                raise _validation("A data source can only have one title property.")
            plan.append((name, spec))
        for name, spec in plan:
            existing_name = (
                name
                if name in ds.properties
                else next((n for n, p in ds.properties.items() if p["id"] == name), None)
            )
            if spec is None:
                assert existing_name is not None
                del ds.properties[existing_name]
                continue
            types = [k for k in spec if k in PROPERTY_TYPES]
            if existing_name is None:
                prop = {"id": _short_id(), "name": name, "type": types[0]}
                prop[types[0]] = _schema_config(types[0], spec[types[0]], None)
                ds.properties[name] = prop
                continue
            prop = ds.properties[existing_name]
            if types:
                old = prop.get(types[0]) if prop["type"] == types[0] else None
                prop.pop(prop["type"], None)
                prop["type"] = types[0]
                prop[types[0]] = _schema_config(types[0], spec[types[0]], old)
            new_name = spec.get("name")
            if isinstance(new_name, str) and new_name != existing_name:
                if new_name in ds.properties:
                    raise _validation(f"A property named {new_name} already exists.")
                del ds.properties[existing_name]
                prop["name"] = new_name
                ds.properties[new_name] = prop
                for page in self.pages.values():
                    if page.data_source_id == ds.id and existing_name in page.properties:
                        page.properties[new_name] = page.properties.pop(existing_name)

    def _query_data_source(
        self, ds_id: str, body: dict[str, Any], params: dict[str, str], **_: Any
    ) -> dict[str, Any]:
        ds = self._data_source(ds_id)
        page_size = _page_size(body.get("page_size", 100), "body.page_size")
        now = self.clock()
        pages = [
            p
            for p in self.pages.values()
            if p.data_source_id == ds.id and not p.in_trash and p.created + self.query_lag <= now
        ]
        flt = body.get("filter")
        if flt is not None:
            pages = [p for p in pages if self._match(ds, p, flt)]
        sorts = body.get("sorts") or [{"timestamp": "created_time", "direction": "descending"}]
        for sort in reversed(sorts):
            reverse = sort.get("direction", "ascending") == "descending"
            if sort.get("timestamp") in ("created_time", "last_edited_time"):
                attr = "created" if sort["timestamp"] == "created_time" else "edited"
                # Notion shows times to the minute; ties keep the order pages were created in.
                pages.sort(key=lambda p, a=attr: (_minute(getattr(p, a)), p.seq), reverse=reverse)
            elif "property" in sort:
                name = sort["property"]
                if name not in ds.properties:
                    raise _validation(f"Could not find sort property with name or id: {name}")
                pages.sort(key=lambda p, n=name: _sort_key(p.properties.get(n)), reverse=reverse)
            else:
                raise _validation("body failed validation: body.sorts[0] is invalid.")
        return _paginate(
            [self._page_json(p) for p in pages],
            body.get("start_cursor"),
            page_size,
            "page_or_data_source",
        )

    def _match(self, ds: _DataSource, page: _Page, flt: Any) -> bool:
        if not isinstance(flt, dict):
            raise _validation("body failed validation: body.filter should be an object.")
        if "and" in flt:
            return all(self._match(ds, page, f) for f in flt["and"])
        if "or" in flt:
            return any(self._match(ds, page, f) for f in flt["or"])
        name = flt.get("property")
        if name not in ds.properties:
            raise _validation(f"Could not find property with name or id: {name}")
        prop_type = ds.properties[name]["type"]
        keys = [k for k in flt if k != "property"]
        if len(keys) != 1:
            raise _validation("body failed validation: body.filter should have one condition type.")
        kind = keys[0]
        text_types = {"title", "rich_text"}
        if kind != prop_type and not (kind in text_types and prop_type in text_types):
            raise _validation(
                f"body failed validation: filter type `{kind}` does not match property "
                f"`{name}` of type `{prop_type}`."
            )
        value = _comparable(page.properties.get(name))
        (condition, target), *_ = flt[kind].items()
        if condition == "equals":
            return value == target
        if condition == "does_not_equal":
            return value != target
        if condition == "contains":
            return isinstance(value, str) and str(target) in value
        if condition == "is_empty":
            return value in (None, "")
        if condition == "is_not_empty":
            return value not in (None, "")
        raise _validation(f"body failed validation: unsupported filter condition {condition}.")

    # pages ------------------------------------------------------------------------------

    def _create_page(self, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        for key in ("content", "markdown", "template"):
            if key in body:
                raise _validation(f"body.{key} is not supported by this fake.")
        parent = body.get("parent")
        if not isinstance(parent, dict):
            raise _validation(
                "body failed validation: body.parent should be defined, instead was `undefined`."
            )
        if "data_source_id" in parent:
            ds = self._data_source(_norm_id(str(parent["data_source_id"])))
        elif "database_id" in parent:
            db_id = _norm_id(str(parent["database_id"]))
            if db_id not in self.databases:
                raise _not_found("database", db_id)
            ds = self.data_sources[self.databases[db_id]["data_sources"][0]]
        else:
            raise _validation(
                "body failed validation: body.parent.data_source_id should be defined "
                "(page parents are not supported by this fake)."
            )
        props = body.get("properties") or {}
        converted = self._convert_properties(ds, props)
        children = body.get("children")
        if children is not None:
            self._validate_children_request(children)
        page = self._new_page(ds, {}, converted=converted)
        if children:
            self._create_blocks(page.id, True, children)
        return self._page_json(page)

    def _new_page(
        self, ds: _DataSource, props: dict[str, Any], converted: dict[str, Any] | None = None
    ) -> _Page:
        self._seq += 1
        now = self.clock()
        values = converted if converted is not None else self._convert_properties(ds, props)
        page = _Page(
            id=_new_id(),
            data_source_id=ds.id,
            properties=values,
            seq=self._seq,
            created=now,
            edited=now,
        )
        self.pages[page.id] = page
        self.children[page.id] = []
        return page

    def _page(self, page_id: str) -> _Page:
        return _found(self.pages, "page", page_id)

    def _get_page(self, page_id: str, **_: Any) -> dict[str, Any]:
        return self._page_json(self._page(page_id))

    def _patch_page(self, page_id: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        page = self._page(page_id)
        allowed = {
            "properties",
            "icon",
            "cover",
            "is_locked",
            "erase_content",
            "archived",
            "in_trash",
        }
        unknown = set(body) - allowed
        if unknown:
            raise _validation(f"body failed validation: body.{sorted(unknown)[0]} is not allowed.")
        trash = body.get("in_trash", body.get("archived"))
        if trash is not None and not isinstance(trash, bool):
            raise _validation("body failed validation: body.in_trash should be a boolean.")
        edits = bool(body.get("properties")) or bool(body.get("erase_content"))
        if page.in_trash and trash is not False and edits:
            raise _archived()
        ds = self.data_sources[page.data_source_id]
        converted = self._convert_properties(ds, body.get("properties") or {})
        if trash is not None:
            page.in_trash = trash
        page.properties.update(converted)
        if body.get("erase_content"):
            for child in self.children.get(page.id, []):
                self._trash_subtree(child)
            self.children[page.id] = []
        page.edited = self.clock()
        return self._page_json(page)

    def _convert_properties(self, ds: _DataSource, props: Any) -> dict[str, Any]:
        if not isinstance(props, dict):
            raise _validation("body failed validation: body.properties should be an object.")
        out: dict[str, Any] = {}
        for name, value in props.items():
            schema = ds.properties.get(name) or next(
                (p for p in ds.properties.values() if p["id"] == name), None
            )
            if schema is None:
                raise _validation(f"{name} is not a property that exists.")
            kind = schema["type"]
            if not isinstance(value, dict) or kind not in value:
                raise _validation(f"{schema['name']} is expected to be {kind}.")
            out[schema["name"]] = self._convert_value(
                schema, value[kind], f"body.properties.{name}.{kind}"
            )
        return out

    def _convert_value(self, schema: dict[str, Any], raw: Any, path: str) -> Any:
        kind = schema["type"]
        name = schema["name"]
        if kind in ("title", "rich_text"):
            if not isinstance(raw, list):
                raise _validation(f"{name} is expected to be {kind}.")
            _validate_rich_text(raw, path)
            return [_expand_rich_text(item) for item in raw]
        if raw is None:
            return None
        if kind == "number":
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise _validation(f"{name} is expected to be number.")
            return raw
        if kind == "select":
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                raise _validation(f"{name} is expected to be select.")
            label = raw["name"]
            if "," in label:
                raise _validation(f"Select option names cannot contain commas: {label}")
            if len(label) > 100:
                raise _validation(
                    f"{path}.name.length should be ≤ `100`, instead was `{len(label)}`."
                )
            options = schema["select"].setdefault("options", [])
            option = next((o for o in options if o["name"] == label), None)
            if option is None:
                option = {"id": _short_id(), "name": label, "color": "default"}
                options.append(option)
            return dict(option)
        if kind == "date":
            if not isinstance(raw, dict) or not isinstance(raw.get("start"), str):
                raise _validation(f"{name} is expected to be date.")
            try:
                datetime.fromisoformat(raw["start"].replace("Z", "+00:00"))
            except ValueError as exc:
                raise _validation(f"{path}.start should be a valid ISO 8601 date string.") from exc
            return {"start": raw["start"], "end": raw.get("end"), "time_zone": raw.get("time_zone")}
        if kind in ("url", "email", "phone_number"):
            if not isinstance(raw, str):
                raise _validation(f"{name} is expected to be {kind}.")
            limit = MAX_URL if kind == "url" else 200
            if len(raw) > limit:
                raise _validation(f"{path}.length should be ≤ `{limit}`, instead was `{len(raw)}`.")
            return raw
        if kind == "checkbox":
            if not isinstance(raw, bool):
                raise _validation(f"{name} is expected to be checkbox.")
            return raw
        raise _validation(f"{name}: property type {kind} is not supported by this fake.")

    def _page_json(self, page: _Page) -> dict[str, Any]:
        ds = self.data_sources[page.data_source_id]
        props: dict[str, Any] = {}
        for name, schema in ds.properties.items():
            kind = schema["type"]
            default: Any = [] if kind in ("title", "rich_text") else None
            if kind == "checkbox":
                default = False
            value = page.properties.get(name, default)
            props[name] = {"id": schema["id"], "type": kind, kind: json.loads(json.dumps(value))}
        return {
            "object": "page",
            "id": page.id,
            "created_time": _iso(page.created),
            "last_edited_time": _iso(page.edited),
            "created_by": BOT_USER,
            "last_edited_by": BOT_USER,
            "cover": None,
            "icon": None,
            "parent": {
                "type": "data_source_id",
                "data_source_id": ds.id,
                "database_id": ds.database_id,
            },
            "archived": page.in_trash,
            "in_trash": page.in_trash,
            "is_locked": False,
            "properties": props,
            "url": f"https://www.notion.so/{page.id.replace('-', '')}",
            "public_url": None,
        }

    # blocks -----------------------------------------------------------------------------

    def _container(self, block_id: str) -> tuple[bool, str | None]:
        """(is_page, block type) of a page or block that can hold children; 404 if unknown."""
        if block_id in self.pages:
            if self.pages[block_id].in_trash:
                raise _archived()
            return True, None
        block = _found(self.blocks, "block", block_id)
        if block.in_trash or self._ancestor_trashed(block):
            raise _archived()
        return False, block.type

    def _ancestor_trashed(self, block: _Block) -> bool:
        parent = block.parent_id
        while True:
            if parent in self.pages:
                return self.pages[parent].in_trash
            up = self.blocks.get(parent)
            if up is None:
                return False
            if up.in_trash:
                return True
            parent = up.parent_id

    def _append_children(self, block_id: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        is_page, kind = self._container(block_id)
        unknown = set(body) - {"children", "after", "position"}
        if unknown:
            raise _validation(f"body failed validation: body.{sorted(unknown)[0]} is not allowed.")
        children = body.get("children")
        if not isinstance(children, list):
            raise _validation(
                "body failed validation: body.children should be an array, instead was `undefined`."
            )
        if kind is not None:
            block = self.blocks[block_id]
            heading_toggle = kind.startswith("heading_") and block.body.get("is_toggleable")
            if kind not in CHILD_BEARING and kind != "table" and not heading_toggle:
                raise _validation(f"Block type {kind} does not support children.")
            if kind == "table":
                width = block.body["table_width"]
                for i, child in enumerate(children):
                    if not isinstance(child, dict) or _block_type(child) != "table_row":
                        raise _validation(
                            f"body.children[{i}]: a table can only contain table_row blocks."
                        )
                    _check_row_width(child, width, f"body.children[{i}]")
        self._validate_children_request(children, parent_type=kind)
        after = body.get("after")
        position = None
        if after is not None:
            after_id = _norm_id(str(after))
            siblings = self.children.get(block_id, [])
            if after_id not in siblings:
                raise _validation(f"body.after: block {after} is not a child of {block_id}.")
            position = siblings.index(after_id) + 1
        created = self._create_blocks(block_id, is_page, children, position)
        return {
            "object": "list",
            "results": [self._block_json(self.blocks[c]) for c in created],
            "next_cursor": None,
            "has_more": False,
            "type": "block",
            "block": {},
        }

    def _validate_children_request(self, children: Any, parent_type: str | None = None) -> None:
        if not isinstance(children, list):
            raise _validation("body failed validation: body.children should be an array.")
        total = _validate_block_list(children, "body.children", depth=0, parent_type=parent_type)
        if total > MAX_BLOCKS_PER_REQUEST:
            raise _validation(
                f"body failed validation: body.children contains {total} blocks in total, "
                f"the limit is {MAX_BLOCKS_PER_REQUEST} blocks per request."
            )

    def _create_blocks(
        self, parent_id: str, parent_is_page: bool, children: list[Any], position: int | None = None
    ) -> list[str]:
        ids: list[str] = []
        for child in children:
            kind = _block_type(child)
            body = dict(child[kind])
            nested = body.pop("children", None) or []
            block = _Block(
                id=_new_id(),
                parent_id=parent_id,
                parent_is_page=parent_is_page,
                type=kind,
                body=_normalize_block_body(kind, body),
                created=self.clock(),
            )
            self.blocks[block.id] = block
            self.children[block.id] = []
            ids.append(block.id)
            if nested:
                self._create_blocks(block.id, False, nested)
        siblings = self.children.setdefault(parent_id, [])
        if position is None:
            siblings.extend(ids)
        else:
            siblings[position:position] = ids
        return ids

    def _trash_subtree(self, block_id: str) -> None:
        block = self.blocks.get(block_id)
        if block is None:
            return
        block.in_trash = True
        for child in self.children.get(block_id, []):
            self._trash_subtree(child)

    def _live_children(self, block_id: str) -> list[str]:
        return [c for c in self.children.get(block_id, []) if not self.blocks[c].in_trash]

    def _list_children(self, block_id: str, params: dict[str, str], **_: Any) -> dict[str, Any]:
        if block_id not in self.pages and block_id not in self.blocks:
            raise _not_found("block", block_id)
        page_size = _page_size(params.get("page_size", "100"), "query.page_size")
        results = [self._block_json(self.blocks[c]) for c in self._live_children(block_id)]
        return _paginate(results, params.get("start_cursor"), page_size, "block")

    def _block(self, block_id: str) -> _Block:
        return _found(self.blocks, "block", block_id)

    def _get_block(self, block_id: str, **_: Any) -> dict[str, Any]:
        return self._block_json(self._block(block_id))

    def _patch_block(self, block_id: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        block = self._block(block_id)
        trash = body.get("in_trash", body.get("archived"))
        content = {k: v for k, v in body.items() if k not in ("in_trash", "archived", "type")}
        if (block.in_trash or self._ancestor_trashed(block)) and trash is not False:
            raise _archived()
        if content:
            if set(content) != {block.type}:
                raise _validation(
                    f"body failed validation: block type {block.type} cannot be updated "
                    f"with {sorted(content)[0]}."
                )
            update = dict(content[block.type])
            if "children" in update:
                raise _validation("body failed validation: children cannot be updated here.")
            probe = {"type": block.type, block.type: {**block.body, **update}}
            if block.type == "table":
                probe[block.type]["children"] = [
                    {"type": "table_row", "table_row": {"cells": [[]] * block.body["table_width"]}}
                ]
            _validate_block_list([probe], "body", depth=0, parent_type=None)
            block.body.update(_normalize_block_body(block.type, update))
        if trash is not None:
            block.in_trash = bool(trash)
        return self._block_json(block)

    def _delete_block(self, block_id: str, **_: Any) -> dict[str, Any]:
        if block_id in self.pages:
            self.pages[block_id].in_trash = True
            return {"object": "block", "id": block_id, "type": "child_page", "in_trash": True}
        block = self._block(block_id)
        if block.in_trash:
            raise _archived()
        self._trash_subtree(block_id)
        return self._block_json(block)

    def _block_json(self, block: _Block) -> dict[str, Any]:
        parent = (
            {"type": "page_id", "page_id": block.parent_id}
            if block.parent_is_page
            else {"type": "block_id", "block_id": block.parent_id}
        )
        stamp = _iso(block.created)
        return {
            "object": "block",
            "id": block.id,
            "parent": parent,
            "created_time": stamp,
            "last_edited_time": stamp,
            "created_by": BOT_USER,
            "last_edited_by": BOT_USER,
            "has_children": bool(self._live_children(block.id)),
            "archived": block.in_trash,
            "in_trash": block.in_trash,
            "type": block.type,
            block.type: json.loads(json.dumps(block.body)),
        }

    def iter_blocks(self) -> Iterator[_Block]:
        with self._lock:
            yield from list(self.blocks.values())


# --- validation helpers -------------------------------------------------------------------


def _block_type(block: dict[str, Any]) -> str:
    kind = block.get("type")
    if isinstance(kind, str):
        return kind
    present = [k for k in block if k in BLOCK_TYPES]
    return present[0] if len(present) == 1 else ""


def _validate_block_list(
    blocks: list[Any], path: str, *, depth: int, parent_type: str | None
) -> int:
    if len(blocks) > MAX_CHILDREN:
        raise _validation(
            f"body failed validation: {path}.length should be ≤ `{MAX_CHILDREN}`, "
            f"instead was `{len(blocks)}`."
        )
    total = 0
    for i, block in enumerate(blocks):
        here = f"{path}[{i}]"
        if not isinstance(block, dict):
            raise _validation(f"body failed validation: {here} should be an object.")
        kind = _block_type(block)
        if kind not in BLOCK_TYPES:
            raise _validation(
                f"body failed validation: {here}.type should be a supported block type, "
                f"instead was `{block.get('type')}`."
            )
        body = block.get(kind)
        if not isinstance(body, dict):
            raise _validation(
                f"body failed validation: {here}.{kind} should be defined, instead was `undefined`."
            )
        if "children" in block:
            raise _validation(
                f"body failed validation: {here}.children should be not present; "
                f"put children in {here}.{kind}.children."
            )
        if kind == "table_row" and parent_type != "table":
            raise _validation(
                f"body failed validation: {here}: table_row can only be a child of a table."
            )
        if kind in RICH_TEXT_BLOCKS:
            if "rich_text" not in body:
                raise _validation(
                    f"body failed validation: {here}.{kind}.rich_text should be defined, "
                    "instead was `undefined`."
                )
            _validate_rich_text(body["rich_text"], f"{here}.{kind}.rich_text")
        if kind == "code":
            language = body.get("language", "plain text")
            if language not in CODE_LANGUAGES:
                raise _validation(
                    f"body failed validation: {here}.code.language should be one of the "
                    f"supported languages, instead was `{language}`."
                )
            if "caption" in body:
                _validate_rich_text(body["caption"], f"{here}.code.caption")
        if kind == "to_do" and not isinstance(body.get("checked", False), bool):
            raise _validation(f"body failed validation: {here}.to_do.checked should be a boolean.")
        if kind == "table_row":
            cells = body.get("cells")
            if not isinstance(cells, list):
                raise _validation(
                    f"body failed validation: {here}.table_row.cells should be an array."
                )
            for j, cell in enumerate(cells):
                _validate_rich_text(cell, f"{here}.table_row.cells[{j}]")
        children = body.get("children")
        if kind == "table":
            width = body.get("table_width")
            if not isinstance(width, int) or isinstance(width, bool) or width < 1:
                raise _validation(
                    f"body failed validation: {here}.table.table_width should be a positive "
                    "integer."
                )
            if not children:
                raise _validation(
                    f"body failed validation: {here}.table.children should be defined: "
                    "a table needs at least one row."
                )
            for j, row in enumerate(children):
                if isinstance(row, dict) and _block_type(row) == "table_row":
                    _check_row_width(row, width, f"{here}.table.children[{j}]")
        total += 1
        if children is None:
            continue
        heading_toggle = kind.startswith("heading_") and body.get("is_toggleable")
        if kind not in CHILD_BEARING and kind != "table" and not heading_toggle:
            raise _validation(
                f"body failed validation: {here}.{kind}.children should be not present."
            )
        if not isinstance(children, list):
            raise _validation(f"body failed validation: {here}.{kind}.children should be an array.")
        if depth >= MAX_NESTING:
            raise _validation(
                f"body failed validation: {here}.{kind}.children should be not present, "
                f"instead was `{json.dumps(children)[:60]}`."
            )
        total += _validate_block_list(
            children, f"{here}.{kind}.children", depth=depth + 1, parent_type=kind
        )
    return total


def _check_row_width(row: dict[str, Any], width: int, path: str) -> None:
    cells = row.get("table_row", {}).get("cells")
    if isinstance(cells, list) and len(cells) != width:
        raise _validation(
            f"{path}: Number of cells in table row must match the table width of the parent "
            f"({len(cells)} != {width})."
        )


def _validate_rich_text(items: Any, path: str) -> None:
    if not isinstance(items, list):
        raise _validation(f"body failed validation: {path} should be an array.")
    if len(items) > MAX_RICH_TEXT:
        raise _validation(
            f"body failed validation: {path}.length should be ≤ `{MAX_RICH_TEXT}`, "
            f"instead was `{len(items)}`."
        )
    for i, item in enumerate(items):
        here = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise _validation(f"body failed validation: {here} should be an object.")
        kind = item.get("type", "text")
        if kind == "equation":
            expr = item.get("equation", {}).get("expression")
            if not isinstance(expr, str) or len(expr) > 1000:
                raise _validation(f"body failed validation: {here}.equation.expression is invalid.")
        elif kind == "text":
            text = item.get("text")
            if not isinstance(text, dict) or not isinstance(text.get("content"), str):
                raise _validation(
                    f"body failed validation: {here}.text.content should be defined, "
                    "instead was `undefined`."
                )
            units = utf16_units(text["content"])
            if units > MAX_TEXT_UNITS:
                raise _validation(
                    f"body failed validation: {here}.text.content.length should be ≤ "
                    f"`{MAX_TEXT_UNITS}`, instead was `{units}`."
                )
            link = text.get("link")
            if link is not None:
                url = link.get("url") if isinstance(link, dict) else None
                if not isinstance(url, str):
                    raise _validation(
                        f"body failed validation: {here}.text.link.url should be a string."
                    )
                if len(url) > MAX_URL:
                    raise _validation(
                        f"body failed validation: {here}.text.link.url.length should be ≤ "
                        f"`{MAX_URL}`, instead was `{len(url)}`."
                    )
                if not re.match(r"^(https?://[^\s/]+|mailto:\S+)", url):
                    raise _validation(f"Invalid URL for link: {here}.text.link.url.")
        else:
            raise _validation(
                f"body failed validation: {here}.type `{kind}` is not supported by this fake."
            )
        annotations = item.get("annotations")
        if annotations is not None:
            if not isinstance(annotations, dict):
                raise _validation(
                    f"body failed validation: {here}.annotations should be an object."
                )
            for key, value in annotations.items():
                if key == "color":
                    continue
                if key not in ANNOTATION_KEYS or not isinstance(value, bool):
                    raise _validation(
                        f"body failed validation: {here}.annotations.{key} is invalid."
                    )


def _expand_rich_text(item: dict[str, Any]) -> dict[str, Any]:
    annotations = {key: False for key in ANNOTATION_KEYS}
    annotations["color"] = "default"
    annotations.update(item.get("annotations") or {})
    if item.get("type", "text") == "equation":
        expr = item["equation"]["expression"]
        return {
            "type": "equation",
            "equation": {"expression": expr},
            "annotations": annotations,
            "plain_text": expr,
            "href": None,
        }
    text = item["text"]
    link = text.get("link")
    return {
        "type": "text",
        "text": {"content": text["content"], "link": link},
        "annotations": annotations,
        "plain_text": text["content"],
        "href": link["url"] if link else None,
    }


def _normalize_block_body(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    out = dict(body)
    if "rich_text" in out:
        out["rich_text"] = [_expand_rich_text(i) for i in out["rich_text"]]
    if kind in RICH_TEXT_BLOCKS and kind != "code":
        out.setdefault("color", "default")
    if kind.startswith("heading_"):
        out.setdefault("is_toggleable", False)
    if kind == "to_do":
        out.setdefault("checked", False)
    if kind == "code":
        out.setdefault("language", "plain text")
        out["caption"] = [_expand_rich_text(i) for i in out.get("caption", [])]
    if kind == "table_row":
        out["cells"] = [[_expand_rich_text(i) for i in cell] for cell in out.get("cells", [])]
    if kind == "table":
        out.setdefault("has_column_header", False)
        out.setdefault("has_row_header", False)
    return out


def _schema_config(kind: str, spec: Any, old: Any) -> dict[str, Any]:
    spec = spec if isinstance(spec, dict) else {}
    if kind in ("select", "multi_select"):
        options = list((old or {}).get("options", []))
        for option in spec.get("options", []):
            if not any(o["name"] == option.get("name") for o in options):
                options.append(
                    {
                        "id": _short_id(),
                        "name": option.get("name"),
                        "color": option.get("color", "default"),
                    }
                )
        return {"options": options}
    if kind == "number":
        return {"format": spec.get("format", (old or {}).get("format", "number"))}
    return {}


def _comparable(value: Any) -> Any:
    if isinstance(value, list):
        return "".join(str(i.get("plain_text", "")) for i in value)
    if isinstance(value, dict):
        return value.get("name", value.get("start"))
    return value


def _sort_key(value: Any) -> tuple[int, Any]:
    plain = _comparable(value)
    return (0, "") if plain is None else (1, plain)


def _page_size(raw: Any, path: str) -> int:
    try:
        size = int(raw)
    except (TypeError, ValueError) as exc:
        raise _validation(f"body failed validation: {path} should be a number.") from exc
    if not 1 <= size <= 100:
        raise _validation(
            f"body failed validation: {path} should be ≤ `100` and ≥ `1`, instead was `{size}`."
        )
    return size


def _paginate(results: list[Any], cursor: Any, page_size: int, kind: str) -> dict[str, Any]:
    start = 0
    if cursor is not None:
        ids = [r["id"] for r in results]
        cursor_id = _norm_id(str(cursor))
        if cursor_id not in ids:
            raise _validation(f"body failed validation: start_cursor `{cursor}` is not valid.")
        start = ids.index(cursor_id)
    page = results[start : start + page_size]
    more = start + page_size < len(results)
    return {
        "object": "list",
        "results": page,
        "next_cursor": results[start + page_size]["id"] if more else None,
        "has_more": more,
        "type": kind,
        kind: {},
    }


def _iso(moment: datetime) -> str:
    return _minute(moment).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _minute(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def _short_id() -> str:
    return uuid.uuid4().hex[:4]
