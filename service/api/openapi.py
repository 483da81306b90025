"""The OpenAPI 3.1 document, generated from the registered operations' pydantic models."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from service.api.operations import Operation, operations_of

PREFIX = "/api/v1"
docs_bp = Blueprint("api_docs", __name__)
_PATH_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")
_PARAM_TYPES = {"int": {"type": "integer"}, None: {"type": "string"}, "string": {"type": "string"}}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "examples": ["validation_error"]},
                "message": {"type": "string"},
                "fields": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "field": {"type": "string"},
                            "message": {"type": "string"},
                            "type": {"type": "string"},
                        },
                    },
                },
            },
        }
    },
}
_ERROR_TEXT = {
    400: "Malformed request",
    401: "Missing, unknown, expired or revoked token",
    403: "The token lacks the scope",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Body too large",
    415: "The body is not JSON (Content-Type: application/json)",
    422: "Validation error (fields named)",
}


def _models(operations: tuple[Operation, ...]) -> list[type[BaseModel]]:
    seen: dict[str, type[BaseModel]] = {}
    for op in operations:
        for model in (op.body, _response_model(op)):
            if model is not None:
                seen[model.__name__] = model
    return list(seen.values())


def _response_model(op: Operation) -> type[BaseModel] | None:
    response = op.response
    if isinstance(response, type) and issubclass(response, BaseModel):
        return response
    if isinstance(response, list) and response and issubclass(response[0], BaseModel):
        return response[0]  # type: ignore[no-any-return]
    return None


def build_document(server_url: str = "/") -> dict[str, Any]:
    operations = operations_of(current_app)
    models = _models(operations)
    _, defs = models_json_schema(
        [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["Error"] = ERROR_SCHEMA
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        path = PREFIX + _PATH_PARAM.sub(r"{\2}", op.rule)
        item = paths.setdefault(path, {})
        item[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Release governance API",
            "version": "1",
            "description": (
                "Releases, checklists, beta cohort, update answers and version adoption. "
                "Authenticate with `Authorization: Bearer <token>`; tokens are issued by an "
                "admin under Admin → API tokens with scopes."
            ),
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(op: Operation) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": _PARAM_TYPES.get(conv, {})}
        for conv, name in _PATH_PARAM.findall(op.rule)
    ]
    if op.query is not None:
        schema = op.query.model_json_schema()
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            parameters.append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in required,
                    "description": prop.get("description", ""),
                    "schema": {k: v for k, v in prop.items() if k not in ("title", "description")},
                }
            )
    doc: dict[str, Any] = {
        "operationId": op.endpoint,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": parameters,
        "responses": {str(op.status): {"description": "OK", **_content(op.response)}},
    }
    if op.description:
        doc["description"] = op.description
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{op.body.__name__}"}}
            },
        }
    codes = set(op.errors)
    if op.scope is not None:
        doc["security"] = [{"bearer": []}]
        doc["x-scope"] = op.scope if isinstance(op.scope, str) else " or ".join(op.scope)
        codes |= {401, 403}
    if op.body is not None or op.query is not None:
        codes |= {422}
    if op.body is not None:
        codes |= {400, 413, 415}
    for code in sorted(codes):
        doc["responses"][str(code)] = {
            "description": _ERROR_TEXT.get(code, "Error"),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return doc


def _content(response: Any) -> dict[str, Any]:
    if response is None:
        return {}
    if isinstance(response, type) and issubclass(response, BaseModel):
        schema: dict[str, Any] = {"$ref": f"#/components/schemas/{response.__name__}"}
    elif isinstance(response, list) and response:
        schema = {
            "type": "array",
            "items": {"$ref": f"#/components/schemas/{response[0].__name__}"},
        }
    elif response == "text/csv":
        return {"content": {"text/csv": {"schema": {"type": "string"}}}}
    else:
        schema = TypeAdapter(response).json_schema()
    return {"content": {"application/json": {"schema": schema}}}


def openapi_json() -> Response:
    return jsonify(build_document())


@docs_bp.get("/api/docs")
def api_docs() -> str:
    document = build_document()
    groups: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in document["paths"].items():
        for method, op in item.items():
            groups.setdefault(op["tags"][0], []).append((method.upper(), path, op))
    return render_template("api_docs.html", document=document, groups=groups)
