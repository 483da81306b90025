"""A JSON body nested a thousand levels (or more than ``MAX_DEPTH``) is a 400
``invalid_json`` on every endpoint that reads JSON: never a 500, never a ``RecursionError``
in the log (``service/api/json_body.py``)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask, url_for

from service import policy
from service.api.json_body import MAX_DEPTH, InvalidJson, parse
from service.api.operations import operations_of
from tests import builders
from tests.service import test_authz_matrix as matrix

# The authorization matrix's seeded database: real ids, so every check before the body passes.
world = matrix.world
principal_app = matrix.principal_app

DEEP_BODIES = {
    "arrays": "[" * 1000 + "]" * 1000,
    "objects": '{"a":' * 1000 + "1" + "}" * 1000,
    "in a field": '{"slug": ' + "[" * (MAX_DEPTH + 10) + "]" * (MAX_DEPTH + 10) + "}",
    "with a NUL": '{"x": "\\u0000", "a": ' + "[" * 1000 + "]" * 1000 + "}",
}
# Operations that take no body (they never read one).
NO_BODY = {"delete_skip", "post_regenerate", "delete_device", "lift_freeze"}
NO_BODY |= {"publish_release_notes", "revoke_api_token", "resend_notification"}
NO_BODY |= {"open_meeting", "close_meeting"}  # the weekly meeting: the week is in the path
NO_BODY |= {"publish_meeting_minutes"}  # the minutes of the week in the path, to Notion
# Operations that read a JSON body their declaration does not name.
UNDECLARED_BODY = {"import_stores"}
# Pages that read JSON.
JSON_PAGES = ("notes.notes_preview",)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 500, 1000, 100_000])
def test_the_parser_refuses_deep_nesting_without_recursing(depth: int) -> None:
    for text in ("[" * depth + "]" * depth, '{"a":' * depth + "0" + "}" * depth):
        with pytest.raises(InvalidJson, match=f"deeper than {MAX_DEPTH} levels"):
            parse(text.encode())


def test_the_parser_reads_what_the_service_takes() -> None:
    assert parse(b"") is None
    assert parse(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    assert parse(b'[{"a": [1, 2]}, {"b": {"c": []}}]') == [{"a": [1, 2]}, {"b": {"c": []}}]
    text = '{"markdown": "' + "[link](x) ]]]] {{{{ " * 50 + '"}'
    assert parse(text.encode())["markdown"].startswith("[link]")  # brackets in text: no depth
    many = b"[" + b",".join([b'{"device_id": "d", "n": [1]}'] * 1000) + b"]"
    assert len(parse(many)) == 1000
    with pytest.raises(InvalidJson):
        parse(b"{")


def _targets(app: Flask) -> list[tuple[str, str]]:
    found = []
    for op in operations_of(app):
        if op.method == "GET" or op.endpoint in NO_BODY:
            continue
        assert op.body is not None or op.endpoint in UNDECLARED_BODY, (
            f"{op.endpoint}: does it read a body? add it to NO_BODY or UNDECLARED_BODY"
        )
        found.append((f"api.{op.endpoint}", op.method))
    return found + [(page, "POST") for page in JSON_PAGES]


def test_every_json_endpoint_answers_400_invalid_json(
    principal_app: Flask, world: matrix.World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    rules = {r.endpoint: r for r in principal_app.url_map.iter_rules()}
    token = {"Authorization": f"Bearer {world.tokens['token:all']}"}
    clients: dict[str, Any] = {}

    def person(role: str) -> tuple[Any, dict[str, str]]:
        if role not in clients:
            client = principal_app.test_client()
            assert builders.login(client, matrix._email(role)).status_code == 302
            clients[role] = (client, builders.csrf_header(client, "/"))
        return clients[role]

    wrong = []
    targets = _targets(principal_app)
    assert len(targets) >= 20
    for endpoint, method in targets:
        rule = policy.rule_for(endpoint, method)
        if rule.scopes:
            client, headers = principal_app.test_client(), token
        else:
            role = "admin" if "admin" in rule.roles else world.item_owner
            client, headers = person(role)
        with principal_app.test_request_context():
            path = url_for(endpoint, **{k: world.params[k] for k in rules[endpoint].arguments})
        for name, body in DEEP_BODIES.items():
            response = client.open(
                path,
                method=method,
                data=body,
                headers={**headers, "Content-Type": "application/json"},
            )
            error = (response.get_json(silent=True) or {}).get("error") or {}
            if response.status_code != 400 or error.get("code") != "invalid_json":
                wrong.append(f"{method} {path} ({name}): {response.status_code} {error}")
    assert not wrong, "\n".join(wrong)
    logged = [r.getMessage() + (r.exc_text or "") for r in caplog.records if r.exc_info]
    assert not logged
    assert "RecursionError" not in caplog.text
