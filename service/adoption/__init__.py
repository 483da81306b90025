"""Service side of the adoption feature: heartbeats API, report API and pages, rollup CLI,
the worker's periodic rollup, the stall gauge in ``/metrics``.

- ``services``: apps and releases → what ``version_monitor`` expects; ``stall_summary``,
  ``release_adoption`` and ``beta_adoption_for_checklist`` for other pages.
- ``api``: ``POST /api/v1/heartbeats`` and ``/api/v1/apps/<app>/adoption/...``.
- ``views``: the ``/adoption`` pages.
- ``jobs``: ``relgov adoption rollup|prune`` and ``periodic_rollup(app)``.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register this feature's blueprints, API endpoints, CLI commands and listeners."""
    from service.adoption import jobs, views
    from service.metrics import GAUGE_COLLECTORS

    app.register_blueprint(views.bp)
    app.cli.add_command(jobs.adoption_group)
    if jobs.collect_stall_gauge not in GAUGE_COLLECTORS:
        GAUGE_COLLECTORS.append(jobs.collect_stall_gauge)
    from service.publishing.jobs import JobContext, register_periodic

    def rollup_job(ctx: JobContext) -> str:
        jobs.periodic_rollup(ctx.app)
        return "rolled up today and yesterday"

    # The job worker (``relgov worker``, or in-process under ``make run``) runs it.
    register_periodic("adoption-rollup", ROLLUP_EVERY_SECONDS, rollup_job)


ROLLUP_EVERY_SECONDS = 600
