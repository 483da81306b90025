"""Error pages for people (the API answers in JSON, see ``service.api``)."""

from __future__ import annotations

import logging

from flask import Flask, flash, g, redirect, render_template, request
from flask_wtf.csrf import CSRFError
from markupsafe import escape
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from service import db

MESSAGES = {
    400: "The request could not be understood.",
    403: "Your role does not allow this. Ask an admin if you need it.",
    404: "There is nothing at this address.",
    405: "This page does not accept that kind of request.",
    409: "That conflicts with the current state.",
    413: "The upload is larger than the service accepts.",
    500: "Something went wrong on our side and nothing was saved. Please try again.",
}
_log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5
UNAVAILABLE = "The database cannot be reached right now; nothing was saved. Try again shortly."


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DBAPIError, _database_error)
    app.register_error_handler(500, _internal_error)


def _internal_error(exc: HTTPException) -> tuple[str, int] | Response:
    """An unexpected error: the request's transaction is rolled back, so nothing was saved.

    Flask has logged the traceback (with the request id) before this runs.
    """
    db_session = g.get("db_session")
    if db_session is not None:
        db_session.rollback()  # kept open: the page's layout still reads the logged-in user
    request_id = g.get("request_id") or "-"
    message = f"{MESSAGES[500]} If it happens again, quote request id {request_id}."
    if request.path.startswith("/api/"):
        from service.api import error_response

        return error_response(500, "internal_error", message)
    return render_template("error.html", status=500, title="Internal error", message=message), 500


def _database_error(exc: DBAPIError) -> Response:
    """The database went away (or refused a connection): 503 with ``Retry-After``, not 500.

    The pool checks connections before use (``pool_pre_ping``) and drops the ones a
    disconnect invalidated, so the next request after the database is back succeeds.
    Other database errors (a bug, a constraint) are still 500s.
    """
    if not (isinstance(exc, OperationalError) or exc.connection_invalidated):
        raise exc
    _log.warning("database unavailable: %s", type(exc.orig).__name__ if exc.orig else exc)
    _discard_session()
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if request.path.startswith("/api/"):
        from service.api import error_response

        return error_response(503, "database_unavailable", UNAVAILABLE, headers=headers)
    # A plain page: the site layout would need the database (the logged-in user) itself.
    request_id = escape(g.get("request_id") or "")
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8><title>Service unavailable</title>"
        f"<h1>503 · Service unavailable</h1><p>{UNAVAILABLE}</p>"
        f"<p><small>Request {request_id}</small></p></html>"
    )
    return Response(body, 503, headers, mimetype="text/html")


def _discard_session() -> None:
    db_session = g.pop("db_session", None)
    if db_session is None:
        return
    try:
        db_session.rollback()
        db_session.close()
    except Exception:  # its connection is already gone
        _log.debug("closing the session of a failed request failed", exc_info=True)


def _csrf_error(exc: CSRFError) -> tuple[str, int] | Response:
    if request.path.startswith("/api/"):
        from service.api import error_response

        return error_response(400, "csrf", exc.description or "CSRF check failed")
    db.session().rollback()
    if request.path == "/login":
        flash("Your login form had expired. Please try again.", "warning")
        return redirect(request.path)
    return render_template(
        "error.html",
        status=400,
        title="Form expired",
        message=(
            "This form is missing its security token or the token has expired "
            "(for example after a log out in another tab). Nothing was saved. "
            "Go back, reload the page and submit again."
        ),
    ), 400


def _http_error(exc: HTTPException) -> tuple[str, int] | HTTPException:
    if request.path.startswith("/api/"):
        from service.api import http_error_as_json

        return http_error_as_json(exc)  # type: ignore[return-value]
    status = exc.code or 500
    return render_template(
        "error.html",
        status=status,
        title=exc.name,
        message=MESSAGES.get(status, exc.description or exc.name),
    ), status
