"""Service side of the fleet feature: stores, devices, the beta cohort, freezes, staged
rollout and the update answer (pages in ``views``, API in ``api``, CLI in ``cli``)."""

from __future__ import annotations

from flask import Flask

from service.fleet import models  # noqa: F401  (the fleet_version table)


def init_app(app: Flask) -> None:
    """Register this feature's blueprints, API endpoints, CLI commands and listeners."""
    from service.fleet import answers, rollout, views  # noqa: F401  (rollout: listener)
    from service.fleet.cli import stores_group

    answers.init_app(app)
    app.register_blueprint(views.bp)
    app.cli.add_command(stores_group)
