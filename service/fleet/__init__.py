"""Service side of the fleet feature (pages, API, jobs); see the package's modules."""

from __future__ import annotations

from flask import Flask

from service.fleet import models  # noqa: F401  (the fleet_version table)


def init_app(app: Flask) -> None:
    """Register this feature's blueprints, API endpoints, CLI commands and listeners."""
