"""Releases: apps and trains, the lifecycle, checklists, sign-offs, the meeting view."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the release pages and API."""
    from service.releases import views

    app.register_blueprint(views.bp)
    from service.releases import apps_views, notes_views

    app.register_blueprint(apps_views.bp)
    app.register_blueprint(notes_views.bp)
