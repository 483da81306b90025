"""The release governance service: ``create_app`` is the only place that knows every package."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask

from service.settings import Settings


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    """Build the Flask app from ``settings`` (default: the environment)."""
    settings = (settings or Settings.from_env()).checked()
    app = Flask(__name__, instance_path=str(settings.instance_path.resolve()))
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
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours),
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        TESTING=settings.env == "test",
    )
    app.config.update(overrides)
    if settings.proxy_hops:
        # The client's address (login throttling, logs) and scheme as the proxies saw them.
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    from service import security

    security.init_app(app)  # before any route: bounds <int:> ids; headers on every response

    from service import admin, audit_views, auth, db, errors, logs, metrics, pages
    from service.api import init_app as init_api
    from service.csrf import init_app as init_csrf

    if settings.env == "test":
        auth.use_fast_hashing_for_tests()
    from service import sessions

    sessions.init_app(app)
    db.init_app(app)
    logs.init_app(app)
    metrics.init_app(app)
    init_csrf(app)
    auth.init_app(app)
    errors.init_app(app)
    pages.init_app(app)
    app.register_blueprint(admin.bp)
    app.register_blueprint(audit_views.bp)
    init_api(app)
    from service import adoption, fleet, incidents, publishing, releases

    for feature in (releases, fleet, adoption, publishing, incidents):
        feature.init_app(app)
    from service.adoption import fastpath

    fastpath.install(app)  # the common heartbeat request, answered in front of Flask
    from service import policy

    policy.check(app)  # every endpoint has a line in service/policy.py
    from service.cli_commands import COMMANDS

    for command in COMMANDS:
        app.cli.add_command(command)
    return app
