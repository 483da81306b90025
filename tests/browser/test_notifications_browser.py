"""Slack notifications in a real browser: the messages page, the app's Slack panel, the
Slack members page, and "Send again"; screenshots at 1366 and 1024 px."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from werkzeug.serving import make_server

from service.app import create_app
from service.notifications.models import SlackUser
from tests import builders
from tests.browser.conftest import log_in, screenshot
from tests.builders import PASSWORD
from tests.service.notifications import conftest as notifications
from tests.service.notifications.conftest import make_app, make_release, move, run_due
from tests.service.notifications.test_slack_delivery import record_incident

pytestmark = pytest.mark.browser
# The Slack fixtures: the service pointed at the local fake.
slack, settings = notifications.slack, notifications.settings


def seed(app, session):
    with app.app_context():
        session.add(SlackUser(email="rm@example.com", slack_user_id="U0RITA0001", updated_by="t"))
        session.commit()
        pos = make_app(session, channel="#pos-releases")
        kds = make_app(session, "kds", name="Kitchen display", channel="#nowhere")
        move(session, make_release(session, pos, "3.12.0"), "submit", "approve")
        rejected = make_release(session, pos, "3.12.1")
        move(session, rejected, "submit")
        move(session, rejected, "reject", reason="split bill <b>totals</b> wrong & slow")
        halted = make_release(session, kds, "1.12.0", state="rolling_out", stage_percent=50)
        move(session, halted, "halt", reason="tickets print twice")
        record_incident(session, pos, impact=5, stores=3)
    run_due(app)


def test_messages_page_app_panel_and_members(page, app, admin, session, slack):
    notifications_people(session)
    seed(app, session)
    log_in(page, admin.email, PASSWORD)
    for width in (1366, 1024):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto("/notifications")
        page.wait_for_selector("#slack-messages")
        assert page.locator("tr[data-state=sent]").count() == 3
        assert page.locator("tr[data-state=failed]").count() == 1
        screenshot(page, f"notifications-{width}")
        page.goto("/apps/pos")
        page.wait_for_selector("#slack")
        screenshot(page, f"notifications-app-panel-{width}")
        page.goto("/notifications/slack-users")
        page.wait_for_selector("#slack-users")
        screenshot(page, f"notifications-slack-members-{width}")
        page.goto("/releases/1")
        page.wait_for_selector("section#slack")
        assert (
            "go to #pos-releases (chat.postMessage)" in page.locator("section#slack").inner_text()
        )
        page.locator("section#slack").screenshot(
            path=f"test-results/screenshots/notifications-release-panel-{width}.png"
        )
    # The reason's markup is shown as text, never as markup.
    page.goto("/notifications")
    assert "split bill <b>totals</b> wrong & slow" in page.locator("#slack-messages").inner_text()

    # The KDS channel does not exist: point it elsewhere on the app's page and send again.
    page.goto("/apps/kds")
    page.fill("#slack input[name=channel]", "#releases")
    page.click("#slack button:has-text('Save Slack settings')")
    page.wait_for_selector("text=Saved where Kitchen display's Slack messages go.")
    page.goto("/notifications?state=failed")
    page.click("button:has-text('Send again')")
    page.wait_for_selector("text=queued again to #releases (chat.postMessage)")
    run_due(app)
    page.goto("/notifications")
    assert page.locator("tr[data-state=sent]").count() == 4
    assert any("halted in the staged rollout at 50 %" in t for t in slack.texts())


def test_without_slack_the_page_says_where_messages_would_go(page, settings, admin, session):
    plain = create_app(replace(settings, slack_bot_token="", slack_default_channel=""))
    notifications_people(session)
    with plain.app_context():
        pos = make_app(session, channel="#pos-releases")
        move(session, make_release(session, pos, "3.12.0"), "submit", "approve")
    server = make_server("127.0.0.1", 0, plain, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        page.goto(base + "/login")
        page.fill("input[name=email]", admin.email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        for width in (1366, 1024):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(base + "/notifications")
            page.wait_for_selector("#slack-not-configured")
            row = page.locator("tr[data-state=not_configured]")
            assert "would go to #pos-releases; Slack is not configured" in row.inner_text()
            screenshot(page, f"notifications-not-configured-{width}")
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()
        plain.extensions["relgov.engine"].dispose()


def notifications_people(session):
    builders.make_user(session, email="rm@example.com", role="release_manager", name="Rita Manager")
    builders.make_user(session, email="eng@example.com", role="engineer", name="Eli Eng")
    builders.make_user(session, email="qa@example.com", role="qa", name="Quinn QA")
