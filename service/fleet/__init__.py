"""Service side of the fleet feature (pages, API, jobs); see the package's modules."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register this feature's blueprints, API endpoints, CLI commands and listeners."""
