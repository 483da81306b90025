"""The release calendar in a real browser: from the top bar to a release, at laptop widths."""

from datetime import UTC, datetime, timedelta

import pytest

from service.releases.models import App
from tests.browser.conftest import log_in, screenshot
from tests.builders import PASSWORD, add_release

pytestmark = pytest.mark.browser


def test_the_calendar_leads_from_this_week_to_a_release(page, session, admin):
    pos = App(slug="pos", name="POS register", train_weekday=2, train_time="14:00")
    session.add(pos)
    session.commit()
    release = add_release(
        session, pos, "3.17.0", "in_review", scheduled_for=datetime.now(UTC) + timedelta(days=7)
    )
    log_in(page, admin.email, PASSWORD)
    for width in (1366, 1024):
        page.set_viewport_size({"width": width, "height": 800})
        page.goto("/")
        page.click("nav >> text=Calendar")
        page.wait_for_selector("h1:has-text('Release calendar')")
        # Every link of the top bar and the log-out button stay inside the window.
        logout = page.locator("text=Log out").bounding_box()
        assert logout is not None and logout["x"] + logout["width"] <= width
        assert page.locator("tr[aria-current=date]").count() == 1
        screenshot(page, f"calendar-{width}")
    page.click(f"a:has-text('{release.version}')")
    page.wait_for_url(f"**/releases/{release.id}")
    page.goto("/calendar?start=next+friday")
    assert "start must be a date" in page.inner_text("[role=alert]")
