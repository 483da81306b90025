from collections.abc import Iterator

import pytest
from flask import Blueprint, Flask
from pydantic import BaseModel, Field

from service.api.operations import Routes, add_to
from tests.builders import api_headers, bearer, make_token, make_user


@pytest.fixture
def token(session, admin):
    return make_token(session, creator=admin, scopes=["read"])


def test_missing_token_is_401_json(client):
    response = client.get("/api/v1/audit-events")
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer rg_nope", "Bearer", "Basic abc", "Bearer nope"])
def test_bad_token_is_401(client, header):
    response = client.get("/api/v1/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert "error" in response.json


def test_out_of_scope_is_403(client, session, admin):
    raw = make_token(session, creator=admin, scopes=["heartbeats:write"])
    response = client.get("/api/v1/me", headers=bearer(raw))
    assert response.status_code == 403
    assert "lacks the scope 'read'" in response.json["error"]["message"]


def test_expired_token_is_401(client, session, admin):
    from datetime import timedelta

    from service.auth import issue_token
    from service.models import utcnow

    token, raw = issue_token(session=session, name="old", scopes=["read"], creator=admin)
    token.expires_at = utcnow() - timedelta(days=1)
    session.add(token)
    session.commit()
    response = client.get("/api/v1/me", headers=bearer(raw))
    assert response.status_code == 401
    assert "expired" in response.json["error"]["message"]


def test_unknown_route_and_method_get_json(client, token):
    response = client.get("/api/v1/does-not-exist", headers=bearer(token))
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    response = client.delete("/api/v1/me", headers=bearer(token))
    assert response.status_code == 405
    assert response.json["error"]["code"] == "method_not_allowed"


def test_query_validation_is_422_naming_the_field(client, token):
    response = client.get("/api/v1/audit-events?per_page=abc&page=0", headers=bearer(token))
    assert response.status_code == 422
    error = response.json["error"]
    assert error["code"] == "validation_error"
    assert {f["field"] for f in error["fields"]} == {"per_page", "page"}


def test_audit_events_are_listed_and_filtered(client, session, admin, token):
    make_user(session, email="q@example.com", role="qa")
    response = client.get("/api/v1/audit-events?action=user.create", headers=bearer(token))
    assert response.status_code == 200
    subjects = [item["subject_id"] for item in response.json["items"]]
    assert subjects == ["q@example.com", "admin@example.com"]


class EchoIn(BaseModel):
    name: str = Field(min_length=1)
    count: int = Field(ge=0)


echo_routes = Routes()


@echo_routes.operation("/test-echo", "POST", summary="echo", tag="Test", scope="read", body=EchoIn)
def echo_view(body: EchoIn) -> dict[str, object]:
    return {"name": body.name, "count": body.count}


@pytest.fixture
def echo_app(settings) -> Iterator[Flask]:
    """An app with one extra write endpoint (not in the OpenAPI document) for body handling."""
    from service.app import create_app

    application = create_app(settings, MAX_CONTENT_LENGTH=1024)
    echo_bp = Blueprint("test_echo", __name__, url_prefix="/api/v1")
    add_to(echo_bp, echo_routes)
    application.register_blueprint(echo_bp)
    yield application
    application.extensions["relgov.engine"].dispose()


def test_body_errors(echo_app, session):
    client = echo_app.test_client()
    admin = make_user(session, email="root@example.com", role="admin")
    headers = api_headers(session, creator=admin, scopes=["read"])
    ok = client.post("/api/v1/test-echo", json={"name": "a", "count": 1}, headers=headers)
    assert ok.status_code == 200 and ok.json == {"name": "a", "count": 1}

    bad = client.post("/api/v1/test-echo", json={"name": "", "count": -1}, headers=headers)
    assert bad.status_code == 422
    assert [f["field"] for f in bad.json["error"]["fields"]] == ["name", "count"]

    malformed = client.post(
        "/api/v1/test-echo",
        data="{not json",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert malformed.status_code == 400
    assert malformed.json["error"]["code"] == "invalid_json"

    not_json = client.post("/api/v1/test-echo", data="name=a", headers=headers)
    assert not_json.status_code == 415

    huge = client.post("/api/v1/test-echo", json={"name": "x" * 5000, "count": 1}, headers=headers)
    assert huge.status_code == 413
    assert "1024 bytes" in huge.json["error"]["message"]


def test_openapi_document(client):
    document = client.get("/api/v1/openapi.json").json
    assert document["openapi"].startswith("3.")
    audit = document["paths"]["/api/v1/audit-events"]["get"]
    assert {p["name"] for p in audit["parameters"]} >= {"actor", "action", "page", "per_page"}
    assert audit["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AuditPage"
    }
    assert "401" in audit["responses"] and "422" in audit["responses"]
    assert "AuditEventOut" in document["components"]["schemas"]
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_api_docs_page_renders_the_document(client):
    page = client.get("/api/docs").get_data(as_text=True)
    assert "/api/v1/audit-events" in page and "AuditPage" in page


def test_logged_in_person_may_read_the_api(admin_client):
    assert admin_client.get("/api/v1/me").json["kind"] == "user"


def test_token_requests_get_no_session_cookie(admin_client, token):
    # A logged-in browser's permanent session is refreshed on every request ...
    assert "Set-Cookie" in admin_client.get("/api/v1/me").headers
    # ... but a request that carries a token is a machine: no session is read or written.
    response = admin_client.get("/api/v1/me", headers=bearer(token))
    assert response.json["kind"] == "token"
    assert "Set-Cookie" not in response.headers
