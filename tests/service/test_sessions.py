"""Sessions kept on the server: a saved cookie stops working once its session has ended
(logout, password change, role change, disabling, an admin's "log out everywhere")."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlmodel import col, select

from service.app import create_app
from service.auth import update_user
from service.models import AuditEvent, User, UserSession, utcnow
from tests.builders import PASSWORD, csrf_token, login, make_user, post_form

COOKIE = "relgov_session"


def _logged_in(app, email: str) -> FlaskClient:
    client = app.test_client()
    assert login(client, email).status_code == 302
    return client


def _me(client: FlaskClient) -> int:
    return client.get("/api/v1/me").status_code


def _events(session, action: str) -> list[AuditEvent]:
    session.expire_all()
    return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


def test_a_cookie_saved_before_logout_does_not_work_after_it(client, admin, session):
    login(client, admin.email)
    saved = client.get_cookie(COOKIE).value
    assert _me(client) == 200
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    client.set_cookie(COOKIE, saved)  # replayed: an attacker's copy, or a back button
    assert _me(client) == 401
    assert client.get("/").status_code == 302
    row = session.exec(select(UserSession)).one()
    assert row.revoked_at is not None and row.revoked_reason == "logout"
    assert row.id != saved and len(row.id) == 64  # stored hashed


def test_a_cookie_without_a_server_session_is_no_login(client, admin):
    """A cookie signed with the right key but naming no session (signed before the upgrade,
    or forged with a stolen key) logs nobody in."""
    with client.session_transaction() as flask_session:
        flask_session["_user_id"] = str(admin.id)
        flask_session["_fresh"] = True
    assert client.get("/").status_code == 302
    assert _me(client) == 401


def test_each_login_is_its_own_session(app, admin, session):
    first, second = _logged_in(app, admin.email), _logged_in(app, admin.email)
    first.post("/logout", data={"csrf_token": csrf_token(first, "/")})
    assert _me(first) == 401
    assert _me(second) == 200  # logging out in one browser leaves the other


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"password": "a-new-long-password"}, "password changed"),
        ({"role": "viewer"}, "role changed"),
        ({"active": False}, "disabled"),
    ],
)
def test_password_role_and_disabling_end_the_persons_sessions(app, admin, session, changes, reason):
    make_user(session, email="qa@example.com", role="qa")
    browsers = [_logged_in(app, "qa@example.com") for _ in range(2)]
    bystander = _logged_in(app, admin.email)
    user = session.exec(select(User).where(User.email == "qa@example.com")).one()
    update_user(session=session, user=user, actor="test", **changes)
    session.commit()
    for browser in browsers:
        page = browser.get("/", follow_redirects=True).get_data(as_text=True)
        assert "Your session was ended. Please log in again." in page
        assert _me(browser) == 401
    assert _me(bystander) == 200
    rows = session.exec(select(UserSession).where(UserSession.user_id == user.id)).all()
    assert [r.revoked_reason for r in rows] == [reason, reason]
    event = _events(session, "user.update")[-1]
    assert event.after["sessions_ended"] == 2


def test_renaming_a_person_keeps_their_sessions(app, admin, session):
    make_user(session, email="qa@example.com", role="qa")
    browser = _logged_in(app, "qa@example.com")
    user = session.exec(select(User).where(User.email == "qa@example.com")).one()
    update_user(session=session, user=user, actor="test", name="Quinn", role="qa", active=True)
    session.commit()
    assert _me(browser) == 200


def test_an_admin_changing_their_own_password_stays_logged_in_there(app, admin, session):
    here, elsewhere = _logged_in(app, admin.email), _logged_in(app, admin.email)
    response = post_form(
        here,
        f"/admin/users/{admin.id}",
        {"name": "Ada", "role": "admin", "active": "y", "password": "another-long-password"},
    )
    assert response.status_code == 302
    assert _me(here) == 200
    assert _me(elsewhere) == 401


def test_admin_logs_a_person_out_everywhere(app, admin_client, session):
    make_user(session, email="eng@example.com", role="engineer")
    browsers = [_logged_in(app, "eng@example.com") for _ in range(2)]
    user = session.exec(select(User).where(User.email == "eng@example.com")).one()
    page = admin_client.get(f"/admin/users/{user.id}").get_data(as_text=True)
    assert page.count("127.0.0.1") == 2 and "Log out everywhere" in page
    response = post_form(
        admin_client,
        f"/admin/users/{user.id}/logout-everywhere",
        {},
        page=f"/admin/users/{user.id}",
    )
    assert response.status_code == 302
    assert "2 sessions ended" in admin_client.get(response.headers["Location"]).get_data(
        as_text=True
    )
    assert [_me(b) for b in browsers] == [401, 401]
    assert _me(admin_client) == 200
    event = _events(session, "user.logout_everywhere")[-1]
    assert event.actor == "user:admin@example.com" and event.subject_id == "eng@example.com"
    assert event.after == {"sessions_ended": 2}
    assert "No live session." in admin_client.get(f"/admin/users/{user.id}").get_data(as_text=True)


def test_cli_logs_a_person_out_everywhere(app, runner, admin, session):
    browser = _logged_in(app, admin.email)
    result = runner.invoke(args=["users", "logout-everywhere", "--email", "Admin@example.com"])
    assert result.exit_code == 0, result.output
    assert "admin@example.com: 1 session ended" in result.output
    assert _me(browser) == 401
    assert _events(session, "user.logout_everywhere")[-1].actor.startswith("cli:")
    missing = runner.invoke(args=["users", "logout-everywhere", "--email", "no@example.com"])
    assert missing.exit_code == 2 and "no user with email" in missing.output


def test_the_session_lifetime_comes_from_settings(settings, database_url, session):
    app = create_app(replace(settings, session_hours=1))
    make_user(session, email="qa@example.com", role="qa")
    try:
        browser = _logged_in(app, "qa@example.com")
        row = session.exec(select(UserSession)).one()
        assert row.expires_at - row.created_at == timedelta(hours=1)
        with time_machine.travel(utcnow() + timedelta(minutes=59)):
            assert _me(browser) == 200
        with time_machine.travel(utcnow() + timedelta(hours=1, seconds=1)):
            assert _me(browser) == 401
    finally:
        app.extensions["relgov.engine"].dispose()


def test_last_seen_is_written_at_most_once_a_minute(client, admin, session):
    login(client, admin.email)
    row = session.exec(select(UserSession)).one()
    first = row.last_seen_at
    client.get("/")
    session.refresh(row)
    assert row.last_seen_at == first
    with time_machine.travel(utcnow() + timedelta(minutes=2)):
        client.get("/")
    session.refresh(row)
    assert row.last_seen_at > first


def test_a_failed_login_opens_no_session(client, admin, session):
    login(client, admin.email, "wrong-password!!")
    assert session.exec(select(UserSession)).all() == []
    login(client, admin.email, PASSWORD)
    live = select(UserSession).where(col(UserSession.revoked_at).is_(None))
    assert len(session.exec(live).all()) == 1
