"""CSRF protection for every form; the token-authenticated JSON API is exempt."""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()


def init_app(app: Flask) -> None:
    csrf.init_app(app)
    from service.api import bp as api_bp

    # API clients authenticate with a bearer token that a browser never sends on its own.
    csrf.exempt(api_bp)
