from datetime import timedelta

import pytest
import time_machine
from sqlmodel import select

from service.auth import AuthError, create_user, hash_password, update_user
from service.models import AuditEvent, User, utcnow
from tests.builders import PASSWORD, csrf_token, login, make_user


def test_pages_need_login(client):
    for path in ["/", "/releases", "/audit", "/admin/users"]:
        response = client.get(path)
        assert response.status_code == 302
        assert "/login" in response.headers["Location"]


def test_login_logout(client, admin, session):
    response = login(client, admin.email)
    assert response.status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert "Dashboard" in page and "Ada Admin" in page
    token = csrf_token(client, "/")
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert client.get("/").status_code == 302
    actions = [e.action for e in session.exec(select(AuditEvent)).all()]
    assert "user.login" in actions and "user.logout" in actions


@pytest.mark.parametrize(
    ("email", "password"),
    [("admin@example.com", "wrong-password!!"), ("nobody@example.com", PASSWORD)],
)
def test_failed_login_says_so_and_logs_nothing_in(client, admin, email, password):
    response = login(client, email, password)
    assert response.status_code == 401
    assert "Wrong email or password." in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_disabled_user_cannot_log_in(client, admin, session):
    user = make_user(session, email="gone@example.com", role="qa")
    update_user(session=session, user=user, actor="test", active=False)
    session.commit()
    assert login(client, "gone@example.com").status_code == 401


def test_post_without_csrf_token_is_refused(client, admin):
    response = client.post("/login", data={"email": admin.email, "password": PASSWORD})
    assert response.status_code == 302  # back to the form, with a message
    assert "expired" in client.get("/login").get_data(as_text=True)
    login(client, admin.email)
    response = client.post("/admin/users", data={"email": "x@example.com", "role": "qa"})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)


def test_session_cookie_flags(client, admin):
    response = login(client, admin.email)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_expired_session_asks_to_log_in_again(client, admin):
    login(client, admin.email)
    cookie = client.get_cookie("relgov_session").value
    assert client.get("/").status_code == 200
    with time_machine.travel(utcnow() + timedelta(hours=12, seconds=1)):
        client.set_cookie("relgov_session", cookie)  # a browser that kept it longer
        response = client.get("/")
        assert response.status_code == 302
        assert "expired" in client.get("/login").get_data(as_text=True)


def test_open_redirect_is_not_followed(client, admin):
    token = csrf_token(client)
    response = client.post(
        "/login?next=//evil.example.com/",
        data={"email": admin.email, "password": PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/"


def test_passwords_are_hashed_with_argon2(session):
    user = make_user(session, email="hash@example.com", role="qa")
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


@pytest.mark.parametrize(
    ("email", "role", "password", "field"),
    [
        ("not-an-email", "qa", PASSWORD, "email"),
        ("a@example.com", "wizard", PASSWORD, "role"),
        ("a@example.com", "qa", "short", "password"),
    ],
)
def test_create_user_refuses_bad_input(session, email, role, password, field):
    with pytest.raises(AuthError) as info:
        create_user(
            session=session, email=email, name="", role=role, password=password, actor="test"
        )
    assert info.value.field == field
    session.rollback()
    assert session.exec(select(User)).all() == []


def test_last_admin_cannot_be_demoted(session, admin):
    with pytest.raises(AuthError, match="last active admin"):
        update_user(session=session, user=admin, actor="test", role="viewer")


def test_viewer_cannot_reach_admin(client, session):
    make_user(session, email="v@example.com", role="viewer")
    login(client, "v@example.com")
    assert client.get("/admin/users").status_code == 403
    assert "Admin" not in client.get("/").get_data(as_text=True).split("<main")[0]


def test_unknown_hash_format_does_not_crash(session, client):
    user = make_user(session, email="odd@example.com", role="qa")
    user.password_hash = "plaintext"
    session.add(user)
    session.commit()
    assert login(client, "odd@example.com").status_code == 401
    assert hash_password("x") != hash_password("x")  # salted
