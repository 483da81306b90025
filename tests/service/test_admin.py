import re

from sqlmodel import select

from service.models import ApiToken, AuditEvent, User
from tests.builders import login, post_form


def test_admin_creates_user_in_the_ui(admin_client, session):
    response = post_form(
        admin_client,
        "/admin/users",
        {
            "email": "Quinn@Example.com",
            "name": "Quinn",
            "role": "qa",
            "password": "long-password-1",
        },
    )
    assert response.status_code == 302
    user = session.exec(select(User).where(User.email == "quinn@example.com")).one()
    assert user.role == "qa"
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "user.create")).all()[-1]
    assert event.actor == "user:admin@example.com"
    assert event.after["role"] == "qa"
    assert "password" not in str(event.after)


def test_duplicate_user_gets_a_form_message(admin_client, admin):
    response = post_form(
        admin_client,
        "/admin/users",
        {"email": admin.email, "name": "", "role": "qa", "password": "long-password-1"},
    )
    assert response.status_code == 200
    assert "already exists" in response.get_data(as_text=True)


def test_admin_changes_role(admin_client, session):
    response = post_form(
        admin_client,
        "/admin/users",
        {"email": "e@example.com", "name": "E", "role": "engineer", "password": "long-password-1"},
    )
    user = session.exec(select(User).where(User.email == "e@example.com")).one()
    path = f"/admin/users/{user.id}"
    response = post_form(admin_client, path, {"name": "E", "role": "qa", "active": "y"})
    assert response.status_code == 302
    session.refresh(user)
    assert user.role == "qa"
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "user.update")).one()
    assert event.before["role"] == "engineer" and event.after["role"] == "qa"


def test_token_is_shown_once_and_stored_as_hash(admin_client, session, client):
    response = post_form(
        admin_client, "/admin/tokens", {"name": "CI pos", "scopes": ["releases:write", "read"]}
    )
    html = response.get_data(as_text=True)
    raw = re.search(r'id="new-token">([^<]+)<', html).group(1)
    token = session.exec(select(ApiToken)).one()
    assert raw not in token.token_hash and raw.startswith("rg_")
    assert token.scopes == ["read", "releases:write"]
    assert raw not in admin_client.get("/admin/tokens").get_data(as_text=True)
    headers = {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/v1/me", headers=headers).json["name"] == "CI pos"

    page = admin_client.get("/admin/tokens")
    assert page.status_code == 200
    response = post_form(admin_client, f"/admin/tokens/{token.id}/revoke", {}, page="/admin/tokens")
    assert response.status_code == 302
    denied = client.get("/api/v1/me", headers=headers)
    assert denied.status_code == 401
    assert denied.json["error"]["message"] == "this token was revoked"


def test_token_needs_a_scope(admin_client, session):
    response = post_form(admin_client, "/admin/tokens", {"name": "nothing"})
    assert response.status_code == 200
    assert "choose at least one scope" in response.get_data(as_text=True)
    assert session.exec(select(ApiToken)).all() == []


def test_non_admin_cannot_issue_tokens(client, session):
    from tests.builders import make_user

    make_user(session, email="rm@example.com", role="release_manager")
    login(client, "rm@example.com")
    assert client.get("/admin/tokens").status_code == 403
