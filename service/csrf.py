"""CSRF protection for every form; the token-authenticated JSON API under /api/ is exempt."""

from __future__ import annotations

from flask import Flask, request
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()


def init_app(app: Flask) -> None:
    # Checked by path rather than per blueprint, so that no new form can forget it.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    csrf.init_app(app)
    app.before_request(_protect)


def _protect() -> None:
    # API clients authenticate with a bearer token that a browser never sends on its own.
    if not request.path.startswith("/api/"):
        csrf.protect()
