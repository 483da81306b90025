"""``create_app``: the infrastructure every request stands on, then every feature
(``service/wiring.py``), then the check that the authorization policy covers every endpoint."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from service import audit, auth, csrf, db, errors, logs, metrics, policy, security, sessions, wiring
from service.api.operations import operations_of
from service.api.tokens import install as install_token_cache
from service.settings import Settings


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    """Build the Flask app from ``settings`` (default: the environment)."""
    settings = (settings or Settings.from_env()).checked()
    app = Flask("service", instance_path=str(settings.instance_path.resolve()))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        RELGOV_SETTINGS=settings,
        SQLALCHEMY_DATABASE_URL=settings.database_url,
        MAX_CONTENT_LENGTH=settings.max_content_length,
        MAX_FORM_MEMORY_SIZE=settings.max_content_length,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        SESSION_COOKIE_NAME="relgov_session",
        # The server ends a session RELGOV_SESSION_HOURS after the login (service/sessions.py);
        # the cookie outlives it by a day so that the page can say the session expired.
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours + 24),
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        TESTING=settings.env == "test",
    )
    app.config.update(overrides)
    if settings.proxy_hops:
        # The client's address (login throttling, logs) and scheme as the proxies saw them.
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    security.init_app(app)  # before any route: bounds <int:> ids; headers on every response
    if settings.env == "test":
        auth.use_fast_hashing_for_tests()
    audit.install()
    sessions.init_app(app)
    db.init_app(app)
    install_token_cache(app)  # the engine's; token changes move the token generation
    logs.init_app(app)
    metrics.init_app(app)
    csrf.init_app(app)
    auth.init_app(app)
    errors.init_app(app)
    wiring.init_app(app)
    policy.check(app, operations_of(app))  # every endpoint has a line in service/policy.py
    return app
