"""Publishing to Notion in a real browser: the release partial, retry, and /admin/notion."""

import pytest

from service import db, jobs
from service.jobs import breaker
from tests.browser.conftest import log_in, screenshot
from tests.builders import PASSWORD
from tests.fakes.notion_fake import Fault
from tests.service.publishing import conftest as publishing
from tests.service.publishing.conftest import approve, later, make_release

pytestmark = pytest.mark.browser
# The service's publishing fixtures: Notion pointed at the fake, the release partial on a
# page of its own (/test/publish-partial/<id>), the fake with its schema in place.
notion_fake, settings, app = publishing.notion_fake, publishing.settings, publishing.app
notion = publishing.notion
LONG_NOTE = "# 3.12.0\n\n" + "\n".join(
    f"- Fix number {n} for the kitchen display" for n in range(8)
)


def test_failed_publish_shows_notions_message_and_retry_publishes(
    page, app, admin, session, notion
):
    release = make_release(session, markdown=LONG_NOTE)
    approve(session, release)
    notion.inject(Fault.http(400, method="POST", path=r"/v1/pages$"))
    assert jobs.run_once(app, now=later(10)).state == "failed"

    log_in(page, admin.email, PASSWORD)
    page.goto(f"/test/publish-partial/{release.id}")
    page.wait_for_selector("text=Injected validation error.")
    assert page.locator("[data-publish-state]").inner_text() == "Failed"
    screenshot(page, "publishing-failed")

    page.click("button:has-text('Retry')")
    page.wait_for_url(f"**/releases/{release.id}*")
    assert jobs.run_once(app).state == "succeeded"
    page.goto(f"/test/publish-partial/{release.id}")
    page.wait_for_selector("text=Open in Notion")
    assert page.locator("[data-publish-state]").inner_text() == "Published"
    screenshot(page, "publishing-published")


def test_admin_notion_page_shows_queue_and_open_breaker(page, app, admin, session, notion):
    release = make_release(session)
    approve(session, release)
    notion.inject(Fault.http(401, method="GET", path="/databases/"))
    jobs.run_once(app, now=later(10))
    with app.app_context(), db.session_scope() as s:
        for _ in range(breaker.THRESHOLD):
            breaker.record_failure(s, "notion", "Notion answered 503 service_unavailable")

    log_in(page, admin.email, PASSWORD)
    page.goto("/admin/notion?check=1")
    page.wait_for_selector("text=has every property the service writes")
    assert page.locator("[data-breaker]").inner_text() == "open"
    assert "API token is invalid." in page.locator("table.jobs").inner_text()
    screenshot(page, "publishing-admin")

    page.goto(f"/test/publish-partial/{release.id}")
    page.wait_for_selector("text=Notion looks unavailable")
    screenshot(page, "publishing-breaker-open")
