"""Cookie sessions for people; none for machines.

A request to the JSON API (``/api/v1/``) that carries a bearer token is a machine (CI, a store
device): it gets Flask's null session, so the cookie is neither decoded nor written on the hot
paths (heartbeats, update answers). Other requests, the HTML API docs page among them, keep the
person's session.
"""

from __future__ import annotations

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface


class PeopleOnlySessionInterface(SecureCookieSessionInterface):
    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith("/api/v1/") and "Authorization" in request.headers:
            return self.make_null_session(app)
        return super().open_session(app, request)


def init_app(app: Flask) -> None:
    app.session_interface = PeopleOnlySessionInterface()
