"""The weekly meeting in a real browser: sign, refuse, reject, approve."""

import pytest

from tests.browser.conftest import log_in, screenshot
from tests.builders import PASSWORD
from tests.service.releases.release_fixtures import (
    build_repo,
    make_app_with_checklist,
    registered_release,
)
from tests.service.releases.release_fixtures import people as people

pytestmark = pytest.mark.browser


@pytest.fixture
def release(app, session, tmp_path, people):
    pos = make_app_with_checklist(session, build_repo(tmp_path / "repo").path)
    return registered_release(app, session, pos, people["engineer"], submit=True)


def _switch(page, email):
    page.goto("/")
    if page.locator("text=Log out").count():
        page.click("text=Log out")
    log_in(page, email, PASSWORD)


def _sign(page, title, decision, comment=""):
    item = page.locator("article.item", has_text=title)
    if comment:
        item.locator("input[name=comment]").fill(comment)
    item.locator(f"button[value={decision}]").click()


def test_meeting_flow(page, release, people):
    url = f"/releases/{release.id}"
    _switch(page, "support@example.com")
    page.goto(url)
    rollback = page.locator("article.item", has_text="Rollback plan written")
    assert rollback.locator("button[value=approve]").count() == 0  # not their item

    _switch(page, "qa@example.com")
    page.goto(url)
    _sign(page, "Regression tests pass", "reject", "receipt printer crashes")
    page.wait_for_selector("text=Recorded your decision")

    _switch(page, "engineer@example.com")
    page.goto(url)
    _sign(page, "Rollback plan written", "approve")
    page.wait_for_selector("text=Recorded your decision")

    _switch(page, "release_manager@example.com")
    page.goto(url)
    page.click("details[data-action=approve] > summary")
    page.click("button[data-yes=approve]")
    page.wait_for_selector("text=Could not approve")
    assert "Regression tests pass (rejected)" in page.inner_text(".flash-error")
    week = release.scheduled_for.date().isoformat()  # the week its train leaves
    page.goto(f"/meeting?week={week}")
    row = page.locator("article[data-release='1.1.0']")
    assert "2/4" in row.inner_text()
    assert "“Regression tests pass” rejected" in row.inner_text()
    assert row.get_attribute("class") and "level-bad" in row.get_attribute("class")
    screenshot(page, "meeting-blocked")

    _switch(page, "qa@example.com")
    page.goto(url)
    _sign(page, "Regression tests pass", "approve", "fixed in build 2")
    page.wait_for_selector("text=Recorded your decision")

    _switch(page, "release_manager@example.com")
    page.goto(f"/meeting?week={week}")
    assert "3/4" in page.locator("article[data-release='1.1.0']").inner_text()
    page.goto(url)
    page.click("details[data-action=approve] > summary")
    page.click("button[data-yes=approve]")
    page.wait_for_selector("text=is now approved")
    screenshot(page, "release-approved")
    history = page.locator("details.history").first
    assert history.count() == 1
