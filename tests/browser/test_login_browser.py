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
