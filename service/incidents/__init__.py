"""Incidents: record them (UI and API), score them (impact × scope), show the trend, and
gate a release's promotion from beta on evidence (soak, adoption, beta incidents).

- ``scoring`` (pure): the score and how it was derived.
- ``business_days`` (pure): the beta soak in business days with a holiday calendar.
- ``services``: recording, release suggestion, trend, gates, overrides, the promote guard
  and the checklist evaluators ``beta_soak`` and ``incident_score``.
- ``views`` / ``api``: the pages and ``/api/v1/incidents``.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the pages, the release-page panel, the promote guard and the evaluators."""
    from service.incidents import services, views
    from service.releases.lifecycle import GUARDS, add_guard
    from service.releases.views import RELEASE_PANELS

    app.register_blueprint(views.bp)
    if services.promotion_guard not in GUARDS.get("promote", []):
        add_guard("promote", services.promotion_guard)
    panel = ("incidents/_release_incidents.html", services.release_panel)
    if panel not in RELEASE_PANELS:
        RELEASE_PANELS.append(panel)
