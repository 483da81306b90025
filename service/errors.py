"""Refusals and failures, mapped once: to the JSON envelope under ``/api/``, to a page or a
flashed message elsewhere.

Services refuse a request by raising :class:`DomainError` (or one of ``beta.errors``, which
carry the same ``message``, ``status`` and ``field``). Nothing catches them to translate:
the API answers with the envelope (``service.api.errors``), and a page form declared with
:func:`refusal_goes_back` flashes the message and returns to where the form was.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, ParamSpec

from flask import Flask, flash, g, redirect, render_template, request
from flask_wtf.csrf import CSRFError
from markupsafe import escape
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from beta.errors import BetaError
from service import db
from service.api.errors import (
    ApiError,
    error_response,
    http_error_as_json,
    refusal_response,
)

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
P = ParamSpec("P")


class DomainError(Exception):
    """A request a service refuses: ``message`` for people, ``status`` the HTTP status to
    answer with (422 unless the subclass or the call says otherwise), ``field`` the input
    it is about (None when no single input is)."""

    status = 422
    code: str | None = None  # the API's error code; None: the one of the status

    def __init__(self, message: str, *, status: int | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field or None
        if status is not None:
            self.status = status


Refusal = DomainError | BetaError


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DBAPIError, _database_error)
    app.register_error_handler(500, _internal_error)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(DomainError, _refused)
    app.register_error_handler(BetaError, _refused)


def _is_api() -> bool:
    return request.path.startswith("/api/")


def _api_error(exc: ApiError) -> Response:
    db.session().rollback()
    return error_response(exc)


def _refused(exc: Refusal) -> tuple[str, int] | Response:
    """A refusal no page form handled: the API's envelope, or an error page."""
    db.session().rollback()
    if _is_api():
        return refusal_response(exc.status, exc.message, exc.field, getattr(exc, "code", None))
    status = exc.status if exc.status in MESSAGES else 422
    return render_template(
        "error.html", status=status, title="Not done", message=_sentence(exc.message)
    ), status


def refusal_goes_back(
    failure: str | Callable[[], str], back: Callable[..., str]
) -> Callable[[Callable[P, Any]], Callable[P, Any]]:
    """For a page form: a refusal rolls back, is flashed as ``"<failure>: <message>"``
    (``failure`` may be a function of the request) and redirects to ``back(**view_args)``,
    the page the form sits on."""

    def decorator(view: Callable[P, Any]) -> Callable[P, Any]:
        @functools.wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> Any:
            try:
                return view(*args, **kwargs)
            except (DomainError, BetaError) as exc:
                db.session().rollback()
                what = failure() if callable(failure) else failure
                flash(f"{what}: {exc.message}", "error")
                return redirect(back(**kwargs))

        return wrapped

    return decorator


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:]


def _internal_error(exc: HTTPException) -> tuple[str, int] | Response:
    """An unexpected error: the request's transaction is rolled back, so nothing was saved.

    Flask has logged the traceback (with the request id) before this runs.
    """
    db_session = g.get("db_session")
    if db_session is not None:
        db_session.rollback()  # kept open: the page's layout still reads the logged-in user
    request_id = g.get("request_id") or "-"
    message = f"{MESSAGES[500]} If it happens again, quote request id {request_id}."
    if _is_api():
        return error_response(ApiError(500, "internal_error", message))
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
    if _is_api():
        return error_response(ApiError(503, "database_unavailable", UNAVAILABLE, headers=headers))
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
    if _is_api():
        return error_response(ApiError(400, "csrf", exc.description or "CSRF check failed"))
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


def _http_error(exc: HTTPException) -> tuple[str, int] | Response:
    if _is_api():
        return http_error_as_json(exc)
    status = exc.code or 500
    return render_template(
        "error.html",
        status=status,
        title=exc.name,
        message=MESSAGES.get(status, exc.description or exc.name),
    ), status
