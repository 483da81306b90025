"""Security headers on every page, login throttling per account and per address, and the
inputs that used to reach the database as 500s (ids beyond INTEGER, NUL characters)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import event
from sqlmodel import select

from service.models import SCOPES, AuditEvent, User
from service.security import CONTENT_SECURITY_POLICY
from tests.builders import PASSWORD, api_headers, csrf_token, login, make_user, post_form

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SKIP = {"/logout", "/metrics"}


def assert_secure_headers(response, where: str) -> None:
    csp = response.headers.get("Content-Security-Policy", "")
    assert csp == CONTENT_SECURITY_POLICY, where
    for directive in (
        "script-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ):
        assert directive in csp, (where, directive)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, where
    assert response.headers["X-Content-Type-Options"] == "nosniff", where
    assert response.headers["X-Frame-Options"] == "DENY", where
    assert response.headers["Referrer-Policy"] == "same-origin", where
    assert "Strict-Transport-Security" not in response.headers, where


def test_every_html_page_carries_the_headers_and_no_inline_script(app, admin_client):
    pages = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in (rule.methods or ())
        and not rule.arguments
        and rule.rule not in SKIP
        and not rule.rule.endswith(".csv")
    ]
    html_pages = 0
    for path in pages:
        response = admin_client.get(path)
        assert_secure_headers(response, path)
        if response.mimetype == "text/html":
            html_pages += 1
            body = response.get_data(as_text=True)
            # Only <script src=...> and JSON data blocks; no handler or style attribute.
            for tag in re.findall(r"<script\b[^>]*>", body):
                assert "src=" in tag or 'type="application/json"' in tag, (path, tag)
            assert not re.search(r"\son[a-z]+\s*=", body), path
            assert not re.search(r"\sstyle\s*=|<style\b", body), path
    assert html_pages >= 15, pages


def test_error_pages_login_and_api_carry_the_headers(client, admin, session):
    for path in ("/login", "/no-such-page", "/api/v1/releases", "/api/v1/no-such", "/healthz"):
        assert_secure_headers(client.get(path), path)


def test_answers_to_a_person_or_a_token_are_never_stored(app, admin, admin_client, session):
    pages = ["/", "/admin/users", "/admin/tokens", "/releases", "/audit", "/api/v1/me"]
    for path in pages:
        response = admin_client.get(path)
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-store", path
    created = post_form(admin_client, "/admin/tokens", {"name": "CI", "scopes": ["read"]})
    assert 'id="new-token"' in created.get_data(as_text=True)  # the token, shown once
    assert created.headers["Cache-Control"] == "no-store"
    missing = admin_client.get("/releases/999999")
    assert missing.status_code == 404 and missing.headers["Cache-Control"] == "no-store"
    # Static files stay cacheable, and nobody's login page is private.
    assert "no-store" not in admin_client.get("/static/app.css").headers.get("Cache-Control", "")
    anonymous = app.test_client()
    assert "Cache-Control" not in anonymous.get("/login").headers
    headers = api_headers(session, creator=admin, scopes=["read"])
    for path in ("/api/v1/me", "/api/v1/releases"):
        response = anonymous.get(path, headers=headers)
        assert response.status_code == 200, path
        assert response.headers["Cache-Control"] == "no-store", path


def test_hsts_only_when_configured(settings, database_url):
    from dataclasses import replace

    from service.app import create_app

    app = create_app(replace(settings, hsts_seconds=31536000))
    response = app.test_client().get("/login")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    app.extensions["relgov.engine"].dispose()


def test_api_docs_page_needs_nothing_inline(admin_client):
    response = admin_client.get("/api/docs")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert re.findall(r"<script\b[^>]*>", body) == ['<script src="/static/app.js">']
    assert "style=" not in body


# --- login throttling ----------------------------------------------------------------


def _actions(session) -> list[str]:
    session.expire_all()
    return [e.action for e in session.exec(select(AuditEvent).order_by(AuditEvent.id)).all()]


def test_five_failures_lock_the_account_even_with_the_right_password(client, admin, session):
    with time_machine.travel(T0, tick=False):
        for _ in range(4):
            assert login(client, admin.email, "wrong-password!!").status_code == 401
        fifth = login(client, admin.email, "wrong-password!!")
        assert fifth.status_code == 429
        assert fifth.headers["Retry-After"] == str(15 * 60)
        right = login(client, admin.email, PASSWORD)
        assert right.status_code == 429
        assert "Too many failed logins for this account" in right.get_data(as_text=True)
        assert int(right.headers["Retry-After"]) == 15 * 60
        assert_secure_headers(right, "/login 429")
    assert client.get("/").status_code == 302  # not logged in
    actions = _actions(session)
    assert actions.count("user.login_failed") == 5
    assert actions.count("user.login_locked") == 1
    assert "user.login" not in actions
    locked = session.exec(select(AuditEvent).where(AuditEvent.action == "user.login_locked")).one()
    assert locked.subject_id == admin.email and locked.highlight
    assert locked.actor == "anonymous@127.0.0.1"

    with time_machine.travel(T0 + timedelta(minutes=10), tick=False):
        response = login(client, admin.email, PASSWORD)
        assert response.status_code == 429
        assert int(response.headers["Retry-After"]) == 5 * 60
    with time_machine.travel(T0 + timedelta(minutes=15, seconds=1), tick=False):
        assert login(client, admin.email, PASSWORD).status_code == 302


def test_a_success_clears_the_account_count(client, admin, session):
    with time_machine.travel(T0, tick=False):
        for _ in range(4):
            assert login(client, admin.email, "wrong-password!!").status_code == 401
        assert login(client, admin.email, PASSWORD).status_code == 302
        client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        for _ in range(4):
            assert login(client, admin.email, "wrong-password!!").status_code == 401
        assert login(client, admin.email, PASSWORD).status_code == 302


def test_unknown_accounts_are_throttled_alike(client, session):
    with time_machine.travel(T0, tick=False):
        codes = [
            login(client, "nobody@example.com", "whatever-it-is").status_code for _ in range(6)
        ]
    assert codes == [401, 401, 401, 401, 429, 429]


def test_twenty_failures_from_one_address_pause_every_account_from_it(client, admin, session):
    with time_machine.travel(T0, tick=False):
        for n in range(20):
            response = login(client, f"guess{n % 10}@example.com", "wrong-password!!")
        assert response.status_code == 429
        refused = login(client, admin.email, PASSWORD)
        assert refused.status_code == 429
        assert "your network address" in refused.get_data(as_text=True)
        # Another address is not affected.
        other = client.application.test_client()
        token = csrf_token(other)
        ok = other.post(
            "/login",
            data={"email": admin.email, "password": PASSWORD, "csrf_token": token},
            environ_base={"REMOTE_ADDR": "198.51.100.7"},
        )
        assert ok.status_code == 302
    assert _actions(session).count("user.login_failed") == 20


def _attempt(client, email: str, password: str, address: str):
    token = csrf_token(client)
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token},
        environ_base={"REMOTE_ADDR": address},
    )


STRANGER = "203.0.113.9"


def test_a_third_partys_failures_pause_the_account_only_from_their_address(
    app, client, admin, session
):
    stranger = app.test_client()
    with time_machine.travel(T0, tick=False):
        codes = [_attempt(stranger, admin.email, "guess-guess-guess", STRANGER) for _ in range(5)]
        assert [r.status_code for r in codes] == [401, 401, 401, 401, 429]
        refused = _attempt(stranger, admin.email, PASSWORD, STRANGER)
        assert refused.status_code == 429
        assert "for this account from your network address" in refused.get_data(as_text=True)
        # The person, from their own address, is not locked out.
        assert login(client, admin.email, PASSWORD).status_code == 302
    locked = session.exec(select(AuditEvent).where(AuditEvent.action == "user.login_locked")).one()
    assert locked.after["address"] == STRANGER and locked.after["by"] == "account"


def test_an_admin_sees_and_lifts_a_login_pause(app, admin, session):
    make_user(session, email="qa@example.com", role="qa")
    person, admin_browser = app.test_client(), app.test_client()
    with time_machine.travel(T0, tick=False):
        for _ in range(5):
            _attempt(person, "qa@example.com", "forgotten-password", "198.51.100.20")
        assert _attempt(person, "qa@example.com", PASSWORD, "198.51.100.20").status_code == 429
    with time_machine.travel(T0 + timedelta(minutes=2), tick=False):
        assert login(admin_browser, admin.email).status_code == 302
        people = admin_browser.get("/admin/users").get_data(as_text=True)
        assert people.count("login paused") == 1
        qa = session.exec(select(User).where(User.email == "qa@example.com")).one()
        page = admin_browser.get(f"/admin/users/{qa.id}").get_data(as_text=True)
        assert "198.51.100.20" in page and "13 min" in page and "Lift the pause" in page
        response = post_form(
            admin_browser,
            f"/admin/users/{qa.id}/lift-login-pause",
            {},
            page=f"/admin/users/{qa.id}",
        )
        assert response.status_code == 302
        after = admin_browser.get(response.headers["Location"]).get_data(as_text=True)
        assert "Lifted the login pause on qa@example.com (from 198.51.100.20)." in after
        assert "not paused" in after
    with time_machine.travel(T0 + timedelta(minutes=3), tick=False):
        assert _attempt(person, "qa@example.com", PASSWORD, "198.51.100.20").status_code == 302
    lifted = session.exec(
        select(AuditEvent).where(AuditEvent.action == "user.login_unlocked")
    ).one()
    assert lifted.actor == "user:admin@example.com" and lifted.subject_id == "qa@example.com"
    assert lifted.after == {"addresses": ["198.51.100.20"]}


def test_the_cli_lifts_a_login_pause(app, runner, admin, session):
    stranger = app.test_client()
    with time_machine.travel(T0, tick=False):
        for _ in range(5):
            _attempt(stranger, admin.email, "guess-guess-guess", STRANGER)
    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        result = runner.invoke(args=["users", "lift-pause", "--email", admin.email])
        assert result.exit_code == 0, result.output
        assert f"admin@example.com: login pause lifted ({STRANGER})" in result.output
        assert _attempt(stranger, admin.email, "guess-guess-guess", STRANGER).status_code == 401
    assert _actions(session).count("user.login_unlocked") == 1


def test_throttle_limits_come_from_settings(settings, database_url, session):
    from dataclasses import replace

    from service.app import create_app

    app = create_app(replace(settings, login_max_failures=2, login_window_minutes=1))
    make_user(session, email="qa@example.com", role="qa")
    client = app.test_client()
    with time_machine.travel(T0, tick=False):
        assert login(client, "qa@example.com", "wrong-password!!").status_code == 401
        assert login(client, "qa@example.com", "wrong-password!!").status_code == 429
        assert login(client, "qa@example.com").headers["Retry-After"] == "60"
    with time_machine.travel(T0 + timedelta(seconds=61), tick=False):
        assert login(client, "qa@example.com").status_code == 302
    app.extensions["relgov.engine"].dispose()


# --- inputs the database cannot hold ---------------------------------------------------


@pytest.fixture
def everything(session, admin) -> dict[str, str]:
    return api_headers(session, creator=admin, scopes=list(SCOPES), name="everything")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/releases/2147483648",
        "/api/v1/incidents/99999999999999999999",
        "/releases/9999999999",
    ],
)
def test_ids_beyond_integer_are_unknown_not_500(admin_client, everything, path):
    response = admin_client.get(path, headers=everything if "/api/" in path else {})
    assert response.status_code == 404


def test_an_id_beyond_integer_is_named_as_given_and_not_queried(app, client, everything):
    huge = "99999999999999999999999"
    client.get("/api/v1/releases", headers=everything)  # the token is known and cached now
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    engine = app.extensions["relgov.engine"]
    event.listen(engine, "before_cursor_execute", seen)
    try:
        for path, what in [
            (f"/api/v1/releases/{huge}", f"no release {huge}"),
            (f"/api/v1/releases/{huge}/items/1/sign-offs", f"no release {huge}"),
            (f"/api/v1/incidents/{huge}", f"no incident {huge}"),
            (f"/api/v1/freezes/{huge}/lift", f"no freeze {huge}"),
        ]:
            method = "POST" if path.endswith("/lift") else "GET"
            response = client.open(path, method=method, headers=everything)
            assert response.status_code == 404, path
            assert response.get_json()["error"]["message"] == what
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert not [s for s in statements if "release" in s or "incident" in s or "freeze" in s]


def test_nul_characters_are_refused_naming_the_field(client, everything):
    response = client.post(
        "/api/v1/stores", json={"external_id": "S\x001", "name": "Nul"}, headers=everything
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"][0]["field"] == "external_id"
    response = client.get("/api/v1/stores?q=a%00b", headers=everything)
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"][0]["field"] == "q"
    assert client.get("/api/v1/stores/S%001", headers=everything).status_code == 404
    assert client.post("/login", data={"email": "a\x00@example.com"}).status_code == 400


def test_behind_a_proxy_the_forwarded_address_is_throttled(settings, database_url, session):
    from dataclasses import replace

    from service.app import create_app

    app = create_app(replace(settings, login_max_failures_per_address=2, proxy_hops=1))
    client = app.test_client()

    def attempt(address: str) -> int:
        token = csrf_token(client)
        return client.post(
            "/login",
            data={"email": "nobody@example.com", "password": "x", "csrf_token": token},
            headers={"X-Forwarded-For": address},
        ).status_code

    try:
        with time_machine.travel(T0, tick=False):
            assert [attempt("203.0.113.5") for _ in range(3)] == [401, 429, 429]
            # The proxy's own address is shared, but another client behind it is not paused.
            assert attempt("203.0.113.6") == 401
    finally:
        app.extensions["relgov.engine"].dispose()
