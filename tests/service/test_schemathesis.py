"""Schemathesis against the service's own OpenAPI document: no 5xx, no response that breaks
its schema, status code or content type, for every operation.

One app and one seeded database per module (an app with a git repository and a release, stores
with devices, a freeze, an incident) and a token holding every scope. Each generated case is
sent twice: with the generated path parameters (mostly unknown ids: the 404 paths) and with
the seeded ones (the real paths). A small, derandomized number of examples keeps it quick.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, settings
from sqlmodel import Session, select

from service import db
from service.api.openapi import build_document
from service.app import create_app
from service.models import SCOPES, utcnow
from service.releases.models import ReleaseItem
from service.settings import Settings
from tests.builders import csrf_token, login, make_token, make_user
from tests.conftest import PG_TEMPLATE, PG_URL, pg_database
from tests.service.releases.release_fixtures import (
    build_repo,
    make_app_with_checklist,
    registered_release,
)

# The document describes the operations an app serves: build one to read it.
_described = create_app(
    Settings(
        env="test",
        database_url="sqlite://",
        secret_key="schemathesis-collection-secret-0123456789",
        instance_path=Path("instance"),
    )
)
with _described.app_context():
    schema = schemathesis.openapi.from_dict(build_document())

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]
EXAMPLES = int(os.environ.get("RELGOV_SCHEMATHESIS_EXAMPLES", "10"))
# A fixed, small number of derandomized examples per operation keeps the file quick.
FEW_EXAMPLES = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def _database(_template_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One database for the module, cloned from the migrated template (like ``database_url``)."""
    if PG_URL:
        with pg_database(f"relgov_schemathesis_{os.getpid()}", template=PG_TEMPLATE) as url:
            yield url
        return
    path = tmp_path_factory.mktemp("schemathesis") / "relgov.db"
    shutil.copy(_template_database, path)
    yield f"sqlite:///{path}"


@pytest.fixture(scope="module")
def world(_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The app, a token with every scope, and the ids that make the paths resolve."""
    tmp = tmp_path_factory.mktemp("schemathesis-app")
    flask_app = create_app(
        Settings(
            env="test",
            instance_path=tmp / "instance",
            database_url=_database,
            secret_key="test-secret-key-that-is-long-enough-0123456789",
            repo_cache=tmp / "repos",
            repo_root=tmp,
        )
    )
    engine = db.make_engine(_database, sqlite_transactions=False)
    with Session(engine, expire_on_commit=False) as session:
        admin = make_user(session, email="admin@example.com", role="admin", name="Ada Admin")
        engineer = make_user(session, email="eng@example.com", role="engineer")
        token = make_token(session, creator=admin, scopes=list(SCOPES), name="everything")
        repo = build_repo(tmp / "pos-repo")
        pos = make_app_with_checklist(session, repo.path)
        release = registered_release(flask_app, session, pos, engineer)
        item = session.exec(select(ReleaseItem).where(ReleaseItem.release_id == release.id)).first()
        item_id = item.id if item else 1
    engine.dispose()
    headers = {"Authorization": f"Bearer {token}"}
    client = flask_app.test_client()
    now = utcnow()

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = client.post(path, json=body, headers=headers)
        assert response.status_code in (200, 201), response.get_data(as_text=True)
        return response.get_json()  # type: ignore[no-any-return]

    post("/api/v1/stores", {"external_id": "S0001", "name": "Sakura Ramen"})
    post("/api/v1/stores", {"external_id": "S0002", "name": "Umi Sushi"})
    post("/api/v1/stores/S0001/devices", {"device_id": "S0001-pos-1", "kind": "pos"})
    post("/api/v1/stores/S0002/devices", {"device_id": "S0002-pos-1", "kind": "pos"})
    post("/api/v1/stores/S0001/cohort", {"action": "enrol", "reason": "owner asked"})
    freeze = post(
        "/api/v1/stores/S0002/freezes",
        {"ends_at": (now + timedelta(days=1)).isoformat(), "reason": "New Year's Eve"},
    )
    incident = post(
        "/api/v1/incidents",
        {
            "app": "pos",
            "title": "Tips rounded down",
            "impact": 3,
            "stores": ["S0001"],
            "started_at": (now - timedelta(hours=2)).isoformat(),
        },
    )
    ids = {
        "app": "pos",
        "slug": "pos",
        "kind": "weekly",
        "release_id": release.id,
        "item_id": item_id,
        "external_id": "S0001",
        "device_id": "S0002-pos-1",
        "freeze_id": freeze["id"],
        "incident_id": incident["id"],
        "week_of": (now.date() + timedelta(days=7 - now.weekday())).isoformat(),
        "week": now.date().isoformat(),  # this week's meeting (a date names its ISO week)
        "action_item_id": 1,
    }
    yield {"app": flask_app, "headers": headers, "ids": ids}
    flask_app.extensions["relgov.engine"].dispose()


@schema.parametrize()
@FEW_EXAMPLES
def test_api_conforms_to_its_schema(case: schemathesis.Case[Any], world: dict[str, Any]) -> None:
    flask_app: Flask = world["app"]
    # Werkzeug's test client cannot send a "?" inside a path segment (it takes it for the
    # query string); such cases are only sent with the seeded path parameters.
    if not any("?" in str(value) for value in (case.path_parameters or {}).values()):
        case.call_and_validate(app=flask_app, headers=world["headers"], checks=CHECKS)
    if case.path_parameters:
        case.path_parameters = {
            name: world["ids"].get(name, value) for name, value in case.path_parameters.items()
        }
        case.call_and_validate(app=flask_app, headers=world["headers"], checks=CHECKS)


# Operations documented without bearer security act for a person (the update answer aside,
# which takes either of two token scopes).
PERSON_OPERATIONS = schema.include(
    lambda ctx: (
        "security" not in ctx.operation.definition.raw
        and not ctx.operation.path.endswith("/update")
    )
)


@pytest.fixture(scope="module")
def person(world: dict[str, Any]) -> dict[str, str]:
    """A logged-in admin's session cookie and the page's CSRF token. (Werkzeug's test client
    drops a Cookie header it did not set, so the cookie goes through ``cookies=``.)"""
    client = world["app"].test_client()
    assert login(client, "admin@example.com").status_code == 302
    token = csrf_token(client, "/")
    cookie = client.get_cookie("relgov_session")
    assert cookie is not None
    return {"cookie": cookie.value, "csrf": token}


@PERSON_OPERATIONS.parametrize()
@FEW_EXAMPLES
def test_person_operations_conform_with_a_session(
    case: schemathesis.Case[Any], world: dict[str, Any], person: dict[str, str]
) -> None:
    """The operations that act for a person, called as a logged-in admin (cookie + CSRF)."""
    flask_app: Flask = world["app"]
    case.path_parameters = {
        name: world["ids"].get(name, value) for name, value in (case.path_parameters or {}).items()
    }
    case.call_and_validate(
        app=flask_app,
        headers={"X-CSRFToken": person["csrf"]},
        cookies={"relgov_session": person["cookie"]},
        checks=CHECKS,
    )
