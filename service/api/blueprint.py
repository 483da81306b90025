"""The app's ``/api/v1`` blueprint, built from every feature's operations."""

from __future__ import annotations

from flask import Blueprint, Flask

from service.api import openapi, operations


def init_app(app: Flask, *route_sets: operations.Routes) -> None:
    """Serve ``route_sets`` (every feature's operations) under ``/api/v1``, with the OpenAPI
    document at ``/api/v1/openapi.json`` and the readable page at ``/api/docs``."""
    bp = Blueprint("api", __name__, url_prefix=openapi.PREFIX)
    operations.register(app, bp, *route_sets)
    bp.add_url_rule("/openapi.json", "openapi_json", openapi.openapi_json)
    app.register_blueprint(bp)
    app.register_blueprint(openapi.docs_bp)
