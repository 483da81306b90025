"""Error pages for people (the API answers in JSON, see ``service.api``)."""

from __future__ import annotations

from flask import Flask, flash, redirect, render_template, request
from flask_wtf.csrf import CSRFError
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
}


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(HTTPException, _http_error)


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
