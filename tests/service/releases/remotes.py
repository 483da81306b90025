"""Misbehaving git remotes on 127.0.0.1 (no network): one that accepts connections and never
answers, one that redirects every request elsewhere."""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self


class HangingRemote:
    """Accepts connections and never answers, until :meth:`release` (or the end of the
    ``with``) closes them. ``accepted`` is set once a client connected; ``hanging`` says a
    client is connected and has not given up yet."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.port = self._sock.getsockname()[1]
        self.accepted = threading.Event()
        self.client_gone = threading.Event()
        self._released = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, name="hanging-remote", daemon=True)

    def url(self, name: str = "pos.git") -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    @property
    def hanging(self) -> bool:
        return self.accepted.is_set() and not self.client_gone.is_set()

    def _serve(self) -> None:
        while not self._released.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._conns.append(conn)
            self.accepted.set()
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    def _drain(self, conn: socket.socket) -> None:
        """Read what the client sends, never answer; note when it hangs up."""
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass
        if not self._released.is_set():
            self.client_gone.set()

    def release(self) -> None:
        self._released.set()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # the client sees the end at once
            conn.close()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.release()
        self._sock.close()
        self._thread.join(timeout=5)


class RedirectingRemote:
    """An HTTP server that answers every request with a redirect to ``target``."""

    def __init__(self, target: str) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                self.send_response(302)
                self.send_header("Location", target + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
