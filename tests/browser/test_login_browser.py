import pytest

from tests.browser.conftest import log_in, screenshot
from tests.builders import PASSWORD

pytestmark = pytest.mark.browser


def test_log_in_see_dashboard_and_log_out(page, admin):
    log_in(page, admin.email, PASSWORD)
    page.wait_for_selector("h1:has-text('Dashboard')")
    nav = page.locator("header .mainnav").inner_text()
    for label in ["Releases", "Meeting", "Notes", "Beta", "Adoption", "Audit log", "Admin"]:
        assert label in nav
    screenshot(page, "dashboard")
    page.click("text=Log out")
    page.wait_for_selector("text=You have logged out.")
    page.goto("/")
    assert "/login" in page.url


def test_failed_login_shows_a_message(page, admin):
    log_in(page, admin.email, "not-the-password")
    page.wait_for_selector("text=Wrong email or password.")
    screenshot(page, "login-failed")
    page.goto("/")
    assert "/login" in page.url


def test_admin_issues_and_revokes_a_token(page, admin):
    log_in(page, admin.email, PASSWORD)
    page.goto("/admin/tokens")
    page.fill("input[name=name]", "CI pos-app")
    page.check("input[value='releases:write']")
    page.click("button:has-text('Issue')")
    raw = page.locator("#new-token").inner_text()
    assert raw.startswith("rg_")
    screenshot(page, "token-issued")
    page.click("text=Done")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Revoke')")
    page.wait_for_selector("text=Clients using it now get 401")
    assert page.locator(".badge.bad:has-text('revoked')").count() == 1


def test_admin_sees_sessions_pauses_and_suspended_tokens(page, admin, session, live_server):
    from sqlmodel import select

    from service.models import ApiToken, User
    from tests.builders import make_token, make_user

    leaver = make_user(session, email="leaver@example.com", role="admin", name="Leaving Admin")
    make_token(session, creator=leaver, scopes=["heartbeats:write"], name="store devices")
    make_token(session, creator=admin, scopes=["releases:write"], name="CI pos-app")
    make_user(session, email="qa@example.com", role="qa", name="Quinn QA")
    # Someone who knows QA's email fails five times (from the test's loopback address).
    other = page.context.browser.new_context(base_url=live_server)
    stranger = other.new_page()
    for _ in range(5):
        log_in(stranger, "qa@example.com", "a-wrong-guess!")
    other.close()
    # The pause is QA's (from that address), nobody else's.
    log_in(page, admin.email, PASSWORD)
    page.wait_for_selector("h1:has-text('Dashboard')")
    page.goto("/admin/users")
    assert (
        page.locator("tr:has-text('qa@example.com') .badge:has-text('login paused')").count() == 1
    )
    screenshot(page, "admin-people")

    # Disabling the leaver suspends the token they own.
    page.click("tr:has-text('leaver@example.com') >> text=Edit")
    page.uncheck("input[name=active]")
    page.click("button:has-text('Save')")
    page.goto("/admin/tokens")
    page.wait_for_selector("#suspended-tokens")
    assert (
        "its owner leaver@example.com was disabled"
        in page.locator("#suspended-tokens").inner_text()
    )
    screenshot(page, "admin-tokens-suspended")
    page.select_option("#suspended-tokens select[name=owner_id]", label=admin.email)
    page.click("#suspended-tokens button:has-text('Hand over')")
    page.wait_for_selector("text=store devices now belongs to admin@example.com; it works again.")
    assert page.locator("#suspended-tokens").count() == 0
    token = session.exec(select(ApiToken).where(ApiToken.name == "store devices")).one()
    session.refresh(token)
    assert token.owner_id == admin.id and token.suspended_at is None
    screenshot(page, "admin-tokens")

    # The person's page: their sessions, log out everywhere, and lifting QA's pause.
    qa = session.exec(select(User).where(User.email == "qa@example.com")).one()
    page.goto(f"/admin/users/{qa.id}")
    assert "127.0.0.1" in page.locator("#login-pauses").inner_text()
    screenshot(page, "admin-person-paused")
    page.goto(f"/admin/users/{admin.id}")
    assert page.locator("#sessions tbody tr").count() == 1
    screenshot(page, "admin-person")
    page.goto(f"/admin/users/{qa.id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Lift the pause')")
    page.wait_for_selector("text=Lifted the login pause on qa@example.com (from 127.0.0.1).")
    screenshot(page, "admin-person-pause-lifted")
    page.once("dialog", lambda dialog: dialog.accept())
    page.goto(f"/admin/users/{admin.id}")
    page.click("button:has-text('Log out everywhere')")
    page.wait_for_selector("text=Please log in")
    assert "/login" in page.url
