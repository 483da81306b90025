"""Publishing release notes to Notion through a DB-backed job queue with a circuit breaker.

Modules: ``models`` (Job, CircuitBreaker) · ``jobs`` (queue, worker loop, periodic tasks) ·
``breaker`` · ``notion_publish`` (the handler, auto-publishing, status) · ``views`` ·
``api`` · ``cli``.
"""

from __future__ import annotations

from flask import Flask

from release_notes.notion import TokenBucket


def init_app(app: Flask) -> None:
    """Register this feature's blueprints, API endpoints, CLI commands and listeners."""
    from service.publishing import cli, jobs, notion_publish, views

    notion_publish.register()
    app.register_blueprint(views.bp)
    app.add_template_global(views.publish_status_for, "publish_status_for")
    # One limiter per process, shared by every publish (Notion allows about 3 requests/s).
    app.extensions["relgov.notion_limiter"] = TokenBucket(rate=2.5, capacity=3.0)
    for command in cli.COMMANDS:
        app.cli.add_command(command)
    settings = app.config["RELGOV_SETTINGS"]
    if settings.in_process_worker or settings.env == "development":
        app.extensions.setdefault("relgov.background", []).append(jobs.start_in_process_worker)
