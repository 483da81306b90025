"""The API's error envelope: ``{"error": {"code", "message", "fields"}}``.

Every refused API request answers with it: :class:`ApiError` raised by the API machinery,
a domain error raised by a feature's services (mapped by ``service.errors``), an HTTP error
(unknown route, method, size) and a database outage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Response, current_app, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


class ApiError(Exception):
    """An error the API reports as JSON with ``status``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: Sequence[dict[str, Any]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = list(fields)
        self.headers = headers or {}


def error_response(exc: ApiError) -> Response:
    """The envelope of ``exc``, with its status and headers."""
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.fields:
        body["fields"] = exc.fields
    response = jsonify({"error": body})
    response.status_code = exc.status
    for name, value in exc.headers.items():
        response.headers[name] = value
    return response


def refusal_response(
    status: int, message: str, field: str | None, code: str | None = None
) -> Response:
    """A request a service refused (a domain error): its status, message, field and code."""
    code = code or CODES.get(status, "invalid_request")
    fields = [{"field": field, "message": message, "type": code}] if field else []
    return error_response(ApiError(status, code, message, fields))


def validation_error(exc: ValidationError, *, prefix: str = "") -> ApiError:
    fields = []
    for item in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in item["loc"]) or "body"
        fields.append({"field": f"{prefix}{loc}", "message": item["msg"], "type": item["type"]})
    names = ", ".join(sorted({f["field"] for f in fields}))
    return ApiError(422, "validation_error", f"invalid request: check {names}", fields)


def field_error(field_name: str, message: str, status: int = 422) -> ApiError:
    return ApiError(
        status,
        "validation_error" if status == 422 else "invalid_request",
        f"{field_name}: {message}",
        [{"field": field_name, "message": message, "type": "value_error"}],
    )


def not_found(what: str, field: str | None = None) -> ApiError:
    """404 ``no <what>``, naming the field when the unknown thing came from the body."""
    fields = [{"field": field, "message": "unknown " + field, "type": "not_found"}] if field else []
    return ApiError(404, "not_found", what, fields)


def http_error_as_json(exc: HTTPException) -> Response:
    """The JSON body for an HTTP error under ``/api/`` (unknown route, method, size...)."""
    status = exc.code or 500
    message = exc.description or exc.name
    headers: dict[str, str] = {}
    if status == 404:
        message = f"no API endpoint at {request.path}"
    elif status == 405:
        allowed = exc.get_response().headers.get("Allow", "")
        message = f"{request.method} is not allowed on {request.path}; allowed: {allowed}"
        headers["Allow"] = allowed
    elif status == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        message = f"the request body is larger than the limit of {limit} bytes"
    elif status == 400 and "CSRF" in message:
        message = "send a token in the Authorization header"
    return error_response(ApiError(status, CODES.get(status, "error"), message, headers=headers))
