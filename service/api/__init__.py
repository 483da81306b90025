"""The JSON API under ``/api/v1``: token auth, request validation, errors, OpenAPI.

Each endpoint is declared with :func:`operation`, which validates the request with the same
pydantic / SQLModel models that the OpenAPI document is generated from, checks the token's
scope, and turns every error into ``{"error": {"code", "message", "fields"}}``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from flask_login import current_user
from pydantic import BaseModel, ValidationError
from sqlalchemy import bindparam, event, select, update
from sqlmodel import col
from werkzeug.exceptions import HTTPException

from service import db, policy
from service.auth import TOKEN_PREFIX
from service.models import ApiToken, utcnow

bp = Blueprint("api", __name__, url_prefix="/api/v1")
API_PREFIX = "/api/"


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


def error_response(
    status: int,
    code: str,
    message: str,
    fields: Sequence[dict[str, Any]] = (),
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = list(fields)
    response = jsonify({"error": body})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


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


# --- operations and their registry (the OpenAPI document is built from it) -----------


@dataclass(frozen=True)
class Operation:
    rule: str
    method: str
    endpoint: str
    summary: str
    tag: str
    scope: str | None
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: Any
    status: int
    description: str = ""
    errors: tuple[int, ...] = field(default=())


OPERATIONS: list[Operation] = []


def operation(
    rule: str,
    method: str = "GET",
    *,
    summary: str,
    tag: str,
    scope: str | None = "read",
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: Any = None,
    status: int = 200,
    errors: tuple[int, ...] = (),
    blueprint: Blueprint | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare an API endpoint.

    The view receives path parameters plus ``body=`` and ``query=`` (validated models) when
    declared, and returns a pydantic model, a dict/list, or a ``(value, status)`` pair.
    ``scope=None`` makes the endpoint public. Operations on ``bp`` (the default) appear
    in the OpenAPI document.
    """

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        endpoint = view.__name__

        @functools.wraps(view)
        def wrapped(**kwargs: Any) -> Response:
            if scope is not None:
                authenticate(scope, method)
            elif body is not None:
                _refuse_the_anonymous(method)
            if body is not None:
                kwargs["body"] = _parse_body(body)
            if query is not None:
                try:
                    kwargs["query"] = query.model_validate(request.args.to_dict())
                except ValidationError as exc:
                    raise validation_error(exc) from None
            result = view(**kwargs)
            code = status
            if isinstance(result, tuple):
                result, code = result
            if isinstance(result, Response):
                return result
            return _json(result, code)

        target = blueprint or bp
        target.add_url_rule(rule, endpoint, wrapped, methods=[method])
        if target is not bp:
            return wrapped
        OPERATIONS.append(
            Operation(
                rule=rule,
                method=method,
                endpoint=endpoint,
                summary=summary,
                tag=tag,
                scope=scope,
                body=body,
                query=query,
                response=response,
                status=status,
                description=(view.__doc__ or "").strip(),
                errors=errors,
            )
        )
        return wrapped

    return decorator


def _parse_body(model: type[BaseModel]) -> BaseModel:
    if not request.is_json:
        raise ApiError(
            415, "unsupported_media_type", "send the body as JSON (Content-Type: application/json)"
        )
    raw = request.get_data(cache=True)
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def _json(value: Any, status: int) -> Response:
    payload: Any
    if isinstance(value, BaseModel):
        payload = value.model_dump(mode="json")
    elif isinstance(value, list):
        payload = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    else:
        payload = value
    return current_app.response_class(
        json_text(payload), status=status, mimetype="application/json"
    )


def json_text(payload: Any) -> str:
    """An API answer's body: JSON, non-ASCII kept, dates and the like as strings."""
    return json.dumps(payload, ensure_ascii=False, default=str) + "\n"


# --- authentication ------------------------------------------------------------------

_TOKEN_TOUCH_SECONDS = 60
# How long a process trusts a token it looked up. A revocation or expiry change made through
# the ORM in this process (the pages, the API, the CLI, tests) clears the cache at once; one
# made in another gunicorn worker takes effect there within this many seconds. Expiry itself
# is checked against the clock on every request.
TOKEN_CACHE_SECONDS = 5.0
_TOKEN_CACHE_MAX = 10_000
_TOKEN_COLUMNS = ApiToken.__table__.c  # type: ignore[attr-defined]
_TOKEN_QUERY = select(*_TOKEN_COLUMNS).where(_TOKEN_COLUMNS.token_hash == bindparam("token_hash"))
_token_cache: dict[str, tuple[float, ApiToken]] = {}


def clear_token_cache() -> None:
    """Forget every cached token (this process)."""
    _token_cache.clear()


def _token_changed(_mapper: Any, _connection: Any, _target: Any) -> None:
    _token_cache.clear()


for _event in ("after_update", "after_delete"):
    event.listen(ApiToken, _event, _token_changed)


def cached_token(raw: str) -> ApiToken | None:
    """The token for the raw bearer value when this process holds it in its cache and the
    entry is fresh (no database access); None otherwise."""
    if not raw.startswith(TOKEN_PREFIX):
        return None
    hit = _token_cache.get(hashlib.sha256(raw.encode()).hexdigest())
    if hit is not None and time.monotonic() - hit[0] < TOKEN_CACHE_SECONDS:
        return hit[1]
    return None


def lookup_token(raw: str) -> ApiToken | None:
    """The token for the raw bearer value (revoked and expired ones too), or None.

    Found tokens are cached per process for :data:`TOKEN_CACHE_SECONDS` as detached copies
    (the request must not change them); unknown ones are not cached.
    """
    token = cached_token(raw)
    if token is not None or not raw.startswith(TOKEN_PREFIX):
        return token
    digest = hashlib.sha256(raw.encode()).hexdigest()
    now = time.monotonic()
    row = db.session().connection().execute(_TOKEN_QUERY, {"token_hash": digest}).first()
    if row is None:
        return None
    token = ApiToken(**row._asdict())
    if len(_token_cache) >= _TOKEN_CACHE_MAX:
        _token_cache.clear()
    _token_cache[digest] = (now, token)
    return token


def _refuse_the_anonymous(method: str) -> None:
    """A caller with neither a token nor a session gets 401 before its body is read, unless the
    policy makes the operation public (the view itself checks who the caller is)."""
    if request.headers.get("Authorization") or current_user.is_authenticated:
        return
    if not policy.rule_for(request.endpoint or "", method).public:
        raise ApiError(
            401,
            "unauthorized",
            "missing credentials: log in, or send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": 'Bearer realm="relgov"'},
        )


def authenticate(scope: str, method: str) -> None:
    """Let the request through with a token holding ``scope``, or raise 401/403."""
    header = request.headers.get("Authorization", "")
    if not header:
        # A logged-in person may read the API from the browser; writes need a token.
        if method == "GET" and current_user.is_authenticated and scope == "read":
            return
        raise ApiError(
            401,
            "unauthorized",
            "missing credentials: send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": 'Bearer realm="relgov"'},
        )
    kind, _, raw = header.partition(" ")
    if kind.lower() != "bearer" or not raw.strip():
        raise ApiError(
            401,
            "unauthorized",
            "the Authorization header must be 'Bearer <token>'",
            headers={"WWW-Authenticate": 'Bearer realm="relgov"'},
        )
    token = lookup_token(raw.strip())
    if token is None:
        raise ApiError(401, "unauthorized", "unknown token", headers=_challenge("invalid_token"))
    if token.revoked_at is not None:
        raise ApiError(
            401, "unauthorized", "this token was revoked", headers=_challenge("invalid_token")
        )
    if not token.active:
        raise ApiError(
            401, "unauthorized", "this token has expired", headers=_challenge("invalid_token")
        )
    if scope not in token.scopes:
        raise ApiError(
            403,
            "forbidden",
            f"this token lacks the scope {scope!r} (it has: {', '.join(token.scopes)})",
        )
    g.api_token = token
    touch_token(token)


def _challenge(error: str) -> dict[str, str]:
    return {"WWW-Authenticate": f'Bearer realm="relgov", error="{error}"'}


def touch_due(token: ApiToken, now: datetime | None = None) -> bool:
    """Whether a use of ``token`` is to be recorded now (at most once a minute)."""
    used = token.last_used_at
    return used is None or ((now or utcnow()) - used).total_seconds() >= _TOKEN_TOUCH_SECONDS


def touch_token(token: ApiToken) -> None:
    """Record the token's use (at most once a minute), after the request's transaction."""
    now = utcnow()
    if not touch_due(token, now):
        return
    token_id = token.id
    engine = db.engine()
    token.last_used_at = now  # the cached copy: the next requests need not touch again

    def write() -> None:
        # Its own short transaction once the request's is over: it neither widens the
        # request's transaction nor waits on the request's own write lock.
        with engine.begin() as conn:
            conn.execute(
                update(ApiToken).where(col(ApiToken.id) == token_id).values(last_used_at=now)
            )

    db.after_request_transaction(write)


# --- errors --------------------------------------------------------------------------


def init_app(app: Flask) -> None:
    # Import the endpoint modules so their operations register before the blueprint.
    from service.api import (
        endpoints,  # noqa: F401
        openapi,
    )

    app.register_blueprint(bp)
    app.register_blueprint(openapi.docs_bp)
    app.register_error_handler(ApiError, _handle_api_error)


def _handle_api_error(exc: ApiError) -> Response:
    db.session().rollback()
    return error_response(exc.status, exc.code, exc.message, exc.fields, exc.headers)


_HTTP_CODES = {
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
    return error_response(status, _HTTP_CODES.get(status, "error"), message, headers=headers)
