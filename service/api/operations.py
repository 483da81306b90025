"""Declaring an API operation: one decorator that validates, authenticates and documents.

Each feature's ``api`` module makes one :class:`Routes` and declares its operations on it::

    routes = Routes(tag="Releases")

    @routes.operation("/releases", "POST", summary=..., scope="releases:write",
                      body=ReleaseIn, response=ReleaseDetail, status=201)
    def register(body: ReleaseIn) -> ...: ...

``service/wiring.py`` hands every feature's ``routes`` to
:func:`service.api.blueprint.init_app`, which adds them to the app's ``/api/v1`` blueprint;
the OpenAPI document and the policy check read the operations the app was built with
(:func:`operations_of`), never a module-level list.

A view receives its path parameters plus ``body=`` and ``query=`` (validated models) when
declared, and returns a pydantic model, a dict/list, a Response, or a ``(value, status)``
pair. A write (any method but GET) is committed when the view returns; a refusal raised
anywhere (``ApiError``, a domain error) rolls it back and answers with the error envelope.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from flask_login import current_user
from pydantic import BaseModel, ValidationError

from service import db, policy
from service.api import json_body
from service.api.errors import ApiError, not_found, validation_error
from service.api.person_session import require_person
from service.api.tokens import CHALLENGE, authenticate
from service.security import UnknownId

View = Callable[..., Any]
_OPERATIONS_KEY = "relgov.api_operations"


@dataclass(frozen=True)
class Operation:
    rule: str
    method: str
    endpoint: str
    summary: str
    tag: str
    scope: str | tuple[str, ...] | None
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: Any
    status: int
    description: str = ""
    errors: tuple[int, ...] = field(default=())

    @property
    def scopes(self) -> tuple[str, ...]:
        if self.scope is None:
            return ()
        return (self.scope,) if isinstance(self.scope, str) else self.scope


class Routes:
    """The API operations of one feature, in the order they were declared; ``tag`` is
    their OpenAPI tag unless an operation says otherwise."""

    def __init__(self, tag: str = "") -> None:
        self.tag = tag
        self.declared: list[tuple[Operation, View]] = []

    def operation(
        self,
        rule: str,
        method: str = "GET",
        *,
        summary: str,
        tag: str = "",
        scope: str | tuple[str, ...] | None = "read",
        body: type[BaseModel] | None = None,
        documented_body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: Any = None,
        status: int = 200,
        errors: tuple[int, ...] = (),
        item_owner: Callable[..., str] | None = None,
    ) -> Callable[[View], View]:
        """Declare an endpoint. A tuple of scopes accepts a token holding any of them.
        ``scope=None``: who may call it is its line in ``service/policy.py`` (public, a
        person's session with a role, or a token scope too), checked before anything else;
        ``item_owner`` then returns, from the path parameters, the owner role of the
        checklist item the request names (``ITEM_OWNER`` in the policy), or raises 404.
        ``documented_body`` documents a body the view parses itself. ``errors`` are the
        statuses it may answer besides those its declaration implies (404 with a path
        parameter; 401 and 403 with a scope; 422 with a body or query)."""

        def decorator(view: View) -> View:
            wrapped = _wrap(
                view,
                method=method,
                scope=scope,
                body=body,
                query=query,
                status=status,
                item_owner=item_owner,
            )
            op = Operation(
                rule=rule,
                method=method,
                endpoint=view.__name__,
                summary=summary,
                tag=tag or self.tag,
                scope=scope,
                body=body or documented_body,
                query=query,
                response=response,
                status=status,
                description=(view.__doc__ or "").strip(),
                errors=tuple(sorted({*errors, *((404,) if "<" in rule else ())})),
            )
            self.declared.append((op, wrapped))
            return wrapped

        return decorator


def _wrap(
    view: View,
    *,
    method: str,
    scope: str | tuple[str, ...] | None,
    body: type[BaseModel] | None,
    query: type[BaseModel] | None,
    status: int,
    item_owner: Callable[..., str] | None,
) -> View:
    @functools.wraps(view)
    def wrapped(**kwargs: Any) -> Response:
        # Who may call comes first: a caller who may not gets 401/403 whatever it sent.
        if scope is not None:
            authenticate(scope, method)
        else:
            _authorize(method, kwargs, item_owner)
        _refuse_unknown_ids(kwargs)
        if body is not None:
            kwargs["body"] = _parse_body(body)
        if query is not None:
            try:
                kwargs["query"] = query.model_validate(request.args.to_dict())
            except ValidationError as exc:
                raise validation_error(exc) from None
        result = view(**kwargs)
        if method != "GET":
            db.session().commit()
        code = status
        if isinstance(result, tuple):
            result, code = result
        if isinstance(result, Response):
            return result
        return _json(result, code)

    return wrapped


def add_to(blueprint: Blueprint, *route_sets: Routes) -> tuple[Operation, ...]:
    """Add every operation of ``route_sets`` to ``blueprint`` (before it is registered)."""
    operations = []
    for routes in route_sets:
        for op, view in routes.declared:
            blueprint.add_url_rule(op.rule, op.endpoint, view, methods=[op.method])
            operations.append(op)
    return tuple(operations)


def register(app: Flask, blueprint: Blueprint, *route_sets: Routes) -> None:
    """:func:`add_to`, and remember the operations as the ones ``app`` documents."""
    app.extensions[_OPERATIONS_KEY] = add_to(blueprint, *route_sets)


def operations_of(app: Flask) -> tuple[Operation, ...]:
    """The API operations ``app`` serves (what the OpenAPI document describes)."""
    found: tuple[Operation, ...] = app.extensions.get(_OPERATIONS_KEY, ())
    return found


def read_json_body() -> Any:
    """The request's JSON body (415 when it is not JSON, 400 when it does not parse)."""
    if not request.is_json:
        raise ApiError(
            415, "unsupported_media_type", "send the body as JSON (Content-Type: application/json)"
        )
    try:
        return json_body.parse(request.get_data(cache=True))
    except json_body.InvalidJson as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None


def _parse_body(model: type[BaseModel]) -> BaseModel:
    data = read_json_body()
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def _authorize(
    method: str, path_args: dict[str, Any], item_owner: Callable[..., str] | None
) -> None:
    """Let the caller through as the policy line of the operation says, or raise 401/403:
    a token holding one of its scopes, or a logged-in person (session + ``X-CSRFToken``)
    holding one of its roles."""
    rule = policy.rule_for(request.endpoint or "", method)
    if rule.public:
        return
    if rule.scopes:
        if request.headers.get("Authorization"):
            authenticate(tuple(sorted(rule.scopes)), method)
            return
        if not current_user.is_authenticated:
            raise ApiError(
                401,
                "unauthorized",
                "missing credentials: log in, or send Authorization: Bearer <token>",
                headers=CHALLENGE,
            )
    person = require_person()
    _refuse_unknown_ids(path_args)
    owner = item_owner(**path_args) if item_owner is not None else None
    if not rule.allows(role=person.role, item_owner=owner):
        raise ApiError(403, "forbidden", _who_may(rule.roles_for(owner), person.role))


def _refuse_unknown_ids(path_args: dict[str, Any]) -> None:
    """404 for an id in the path beyond what the database holds, naming it as given."""
    for name, value in path_args.items():
        if isinstance(value, UnknownId):
            raise not_found(f"no {name.removesuffix('_id').replace('_', ' ')} {value}")


def _who_may(roles: list[str], role: str) -> str:
    yours = role.replace("_", " ")
    if not roles:
        return f"a person's session may not do this (you are {yours}); use an API token"
    either = roles[0] if len(roles) == 1 else ", ".join(roles[:-1]) + " or " + roles[-1]
    return f"only a person with the role {either} may do this; you are {yours}"


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
