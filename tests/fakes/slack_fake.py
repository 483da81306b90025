"""A local HTTP fake of Slack: the Web API methods the service calls and incoming webhooks.

Serves on ``127.0.0.1`` (random port) from a background thread, so the real
``slack_sdk.WebClient`` (``base_url=fake.base_url``) and ``WebhookClient``
(``fake.webhook_url``) talk to it over loopback::

    with SlackFake() as fake:
        WebClient(token=fake.token, base_url=fake.base_url).chat_postMessage(...)

It follows Slack's documented behaviour:

- Web API (``/api/<method>``): the bot token as ``Authorization: Bearer``; a missing one is
  ``not_authed``, a wrong one ``invalid_auth``, both HTTP 200 with ``{"ok": false,
  "error": ...}`` as Slack answers. ``chat.postMessage`` (JSON or form): ``channel`` a
  known channel by id or ``#name`` (unknown: ``channel_not_found``; archived:
  ``is_archived``; the bot not a member: ``not_in_channel``), or a member id (``U…``), which
  posts to the direct-message channel Slack opens for it; ``text`` or ``blocks`` required
  (``no_text``); ``metadata`` kept and returned by ``conversations.history`` with
  ``include_all_metadata``. ``conversations.open`` (``users``) returns that DM channel;
  ``conversations.history`` (GET, ``channel`` an id, ``oldest``) lists newest first.
- Incoming webhooks (``/services/T…/B…/…``): JSON ``text`` or ``blocks``; ``200 ok`` as
  ``text/html``; ``400 invalid_payload`` / ``no_text``; ``404 no_service`` for an unknown
  webhook; ``410 channel_is_archived``.

Faults are queued on demand (:class:`Fault`): 429 with ``Retry-After`` (``ratelimited``),
any 5xx (502 with an HTML body, as a proxy sends), an ``ok: false`` error, and a server
that hangs before answering (``apply=True``: the message is posted first, then the answer
is late, as when Slack got it but the response was lost). Every request is recorded.

Self-contained on purpose: it shares no code with the module under test.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TEAM = "T0FAKE00"
WEBHOOK_PATH = "/services/T0FAKE00/B0FAKE00/abcdefghijklmnopqrstuvwx"


@dataclass
class Fault:
    """A canned answer for the next matching request(s)."""

    status: int = 200
    body: Any = None  # dict: JSON; str: text
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    apply: bool = False  # handle the request for real first (then delay, then this answer)
    path: str = ""  # a regex the path must match ("" : any)
    times: int = 1

    @classmethod
    def rate_limited(cls, retry_after: int = 30, path: str = "") -> Fault:
        return cls(
            status=429,
            body={"ok": False, "error": "ratelimited"},
            headers={"Retry-After": str(retry_after)},
            path=path,
        )

    @classmethod
    def http(cls, status: int, path: str = "", times: int = 1) -> Fault:
        body: Any = (
            "<html><body><h1>502 Bad Gateway</h1></body></html>"
            if status == 502
            else {"ok": False, "error": "internal_error"}
        )
        return cls(status=status, body=body, path=path, times=times)

    @classmethod
    def error(cls, code: str, path: str = "") -> Fault:
        return cls(status=200, body={"ok": False, "error": code}, path=path)

    @classmethod
    def hang(cls, seconds: float, *, apply: bool = False, path: str = "") -> Fault:
        return cls(delay=seconds, apply=apply, path=path)


@dataclass
class Posted:
    """A message Slack accepted."""

    via: str  # "api" | "webhook"
    channel: str  # the channel id it landed in ("" for the webhook's)
    text: str
    ts: str
    metadata: dict[str, Any] | None = None


class SlackFake:
    def __init__(self) -> None:
        self.token = "xoxb-fake-0000-token"
        self.channels: dict[str, dict[str, Any]] = {
            "C0RELEASES": {"name": "releases", "archived": False, "member": True},
            "C0POS00001": {"name": "pos-releases", "archived": False, "member": True},
            "C0MEETING1": {"name": "release-meeting", "archived": False, "member": True},
            "C0ARCHIVED": {"name": "old-releases", "archived": True, "member": True},
            "C0NOTMEMBR": {"name": "private-ops", "archived": False, "member": False},
        }
        self.dms: dict[str, str] = {}  # member id -> D… channel
        self.posted: list[Posted] = []
        self.requests: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.webhook_archived = False
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> SlackFake:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def texts(self) -> list[str]:
        return [p.text for p in self.posted]

    def dm_channel(self, member: str) -> str:
        with self._lock:
            return self.dms.setdefault(member, f"D{member[1:]}")

    # --- requests ---------------------------------------------------------------------------

    def _fault_for(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if not fault.path or re.search(fault.path, path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        params: dict[str, Any] = {k: v[0] for k, v in parse_qs(url.query).items()}
        content_type = handler.headers.get("Content-Type") or ""
        if raw and "json" in content_type:
            try:
                params.update(json.loads(raw))
            except ValueError:
                params["__invalid_json"] = True
        elif raw:
            params.update({k: v[0] for k, v in parse_qs(raw.decode()).items()})
        record = {
            "method": method,
            "path": url.path,
            "params": params,
            "auth": handler.headers.get("Authorization"),
        }
        with self._lock:
            self.requests.append(record)
        fault = self._fault_for(url.path)
        if fault is not None:
            if fault.apply:
                self._route(url.path, params, record)
            if fault.delay:
                time.sleep(fault.delay)
            if fault.apply and fault.status == 200 and fault.body is None:
                status, body, headers = self._route(url.path, params, record, dry=True)
            else:
                status, body, headers = fault.status, fault.body, fault.headers
        else:
            status, body, headers = self._route(url.path, params, record)
        self._answer(handler, status, body, headers)

    def _answer(
        self, handler: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str]
    ) -> None:
        if isinstance(body, dict):
            data, kind = json.dumps(body).encode(), "application/json; charset=utf-8"
        else:
            data, kind = str(body or "").encode(), "text/html"
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", kind)
            handler.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
            pass

    def _route(
        self, path: str, params: dict[str, Any], record: dict[str, Any], *, dry: bool = False
    ) -> tuple[int, Any, dict[str, str]]:
        if path.startswith("/services/"):
            return self._webhook(path, params, dry=dry)
        if not path.startswith("/api/"):
            return 404, "Not Found", {}
        auth = record["auth"] or ""
        if not auth:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if auth != f"Bearer {self.token}":
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        api = path.removeprefix("/api/")
        if api == "chat.postMessage":
            return self._post_message(params, dry=dry)
        if api == "conversations.open":
            return self._open(params)
        if api == "conversations.history":
            return self._history(params)
        return 200, {"ok": False, "error": "unknown_method"}, {}

    def _channel_id(self, channel: str) -> str | None:
        if channel in self.channels:
            return channel
        for cid, info in self.channels.items():
            if channel.lstrip("#") == info["name"]:
                return cid
        if re.fullmatch(r"[UW][A-Z0-9]{6,}", channel):
            return self.dm_channel(channel)
        if channel in self.dms.values():
            return channel
        return None

    def _post_message(self, params: dict[str, Any], *, dry: bool) -> tuple[int, Any, dict]:
        channel = str(params.get("channel") or "")
        if not channel:
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        cid = self._channel_id(channel)
        if cid is None:
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        info = self.channels.get(cid)
        if info is not None and info["archived"]:
            return 200, {"ok": False, "error": "is_archived"}, {}
        if info is not None and not info["member"]:
            return 200, {"ok": False, "error": "not_in_channel"}, {}
        text = params.get("text")
        if not text and not params.get("blocks"):
            return 200, {"ok": False, "error": "no_text"}, {}
        metadata = params.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        with self._lock:
            if dry:
                posted = self.posted[-1]
            else:
                posted = Posted("api", cid, str(text or ""), self._next_ts(), metadata)
                self.posted.append(posted)
        return 200, {"ok": True, "channel": cid, "ts": posted.ts, "message": {"text": text}}, {}

    def _next_ts(self) -> str:
        # Slack's ts: the Unix time of the message, unique within the channel.
        return f"{time.time():.0f}.{next(self._ts):06d}"

    def _open(self, params: dict[str, Any]) -> tuple[int, Any, dict]:
        users = str(params.get("users") or "")
        if not re.fullmatch(r"[UW][A-Z0-9]{6,}", users):
            return 200, {"ok": False, "error": "user_not_found"}, {}
        return 200, {"ok": True, "channel": {"id": self.dm_channel(users)}}, {}

    def _history(self, params: dict[str, Any]) -> tuple[int, Any, dict]:
        channel = str(params.get("channel") or "")
        if channel not in self.channels and channel not in self.dms.values():
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        oldest = float(params.get("oldest") or 0)
        with_metadata = str(params.get("include_all_metadata")).lower() in ("1", "true")
        found = []
        for posted in reversed(self.posted):
            if posted.channel != channel or float(posted.ts) < oldest:
                continue
            message: dict[str, Any] = {"type": "message", "text": posted.text, "ts": posted.ts}
            if with_metadata and posted.metadata:
                message["metadata"] = posted.metadata
            found.append(message)
        return 200, {"ok": True, "messages": found, "has_more": False}, {}

    def _webhook(self, path: str, params: dict[str, Any], *, dry: bool) -> tuple[int, Any, dict]:
        if path != WEBHOOK_PATH:
            return 404, "no_service", {}
        if params.get("__invalid_json"):
            return 400, "invalid_payload", {}
        if self.webhook_archived:
            return 410, "channel_is_archived", {}
        text = params.get("text")
        if not text and not params.get("blocks"):
            return 400, "no_text", {}
        if not dry:
            with self._lock:
                self.posted.append(Posted("webhook", "", str(text), self._next_ts()))
        return 200, "ok", {}
