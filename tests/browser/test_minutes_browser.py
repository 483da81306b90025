"""A closed week's "Minutes in Notion" panel in a real browser: published with its link, a
failed publish with Notion's reason and the Retry button a release manager presses, and a
service without the meetings database saying where the minutes would go. Screenshots of the
panel (and the page) at 1366 and 1024 pixels wide."""

from __future__ import annotations

from dataclasses import replace

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session

from service.meetings.weeks import Week
from service.models import User
from service.releases.models import App
from service.settings import Settings
from tests.browser.conftest import SCREENSHOTS, log_in, screenshot
from tests.builders import PASSWORD
from tests.fakes.notion_fake import Fault, NotionFake
from tests.service.meetings.test_minutes_notion import (  # the same fixtures and helpers
    app,
    held_meeting,
    meetings_db,
    notion,
    people,
    pos,
    run,
    settings,
    week,
)

__all__ = ["app", "meetings_db", "notion", "people", "pos", "settings", "week"]  # fixtures
pytestmark = pytest.mark.browser


def panel_at_both_widths(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1366, 1024):
        page.set_viewport_size({"width": width, "height": 850})
        suffix = "" if width == 1366 else "-1024"
        page.locator("#minutes-notion").screenshot(path=str(SCREENSHOTS / f"{name}{suffix}.png"))
        screenshot(page, f"{name}-page{suffix}")
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"{name} is {scroll} px wide at {width}"
    page.set_viewport_size({"width": 1366, "height": 850})


def test_the_minutes_panel_published_then_failed_then_retried(  # type: ignore[no-untyped-def]
    page,
    app: Flask,
    client: FlaskClient,
    session: Session,
    pos: App,
    people: dict[str, User],
    week: Week,
    notion: NotionFake,
    meetings_db: tuple[str, str],
) -> None:
    rm, stop = held_meeting(client, session, pos, people, week)
    assert run(app, 5).state == "succeeded"
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, "rm@example.com", PASSWORD)
    page.goto(f"/meetings/{week}#minutes-notion")
    panel = page.locator("#minutes-notion")
    assert panel.locator("[data-minutes-state=published]").inner_text() == "Published"
    link = panel.locator("a[target=_blank]")
    assert link.inner_text() == f"Open “Release meeting {week}” in Notion"
    assert link.get_attribute("href") == notion.live_pages(meetings_db[1])[0]["url"]
    assert panel.locator("button[data-action=publish-minutes]").inner_text() == "Publish again"
    panel_at_both_widths(page, "minutes-published")

    # An amendment whose publish Notion refuses: the reason shows, with Retry.
    amended = client.post(
        f"/api/v1/meetings/{week}/amendments",
        json={"release_id": stop.id, "decision": "go_with_conditions",
              "reason": "crash on start fixed", "conditions": "QA re-tests on two devices"},
        headers=rm,
    )  # fmt: skip
    assert amended.status_code == 201
    notion.inject(Fault.http(400, method="PATCH", path=r"/v1/blocks/"))
    assert run(app, 10).state == "failed"
    page.reload()
    assert panel.locator("[data-minutes-state=failed]").inner_text() == "Failed"
    assert "Injected validation error" in panel.locator(".publish-error").inner_text()
    panel_at_both_widths(page, "minutes-failed")

    panel.locator("button[data-action=publish-minutes]", has_text="Retry").click()
    page.wait_for_url(f"**/meetings/{week}#minutes-notion")
    assert "Queued publishing the minutes" in page.locator(".flash").first.inner_text()
    assert panel.locator("[data-minutes-state=queued]").inner_text() == "Queued"
    assert run(app, 20).state == "succeeded"
    page.reload()
    assert panel.locator("[data-minutes-state=published]").inner_text() == "Published"


def test_without_the_meetings_database_the_panel_says_where_they_would_go(  # type: ignore[no-untyped-def]
    page,
    app: Flask,
    client: FlaskClient,
    session: Session,
    pos: App,
    people: dict[str, User],
    week: Week,
    settings: Settings,
) -> None:
    app.config["RELGOV_SETTINGS"] = replace(settings, notion_meetings_database_id="")
    held_meeting(client, session, pos, people, week)
    log_in(page, "rm@example.com", PASSWORD)
    page.goto(f"/meetings/{week}#minutes-notion")
    text = page.locator("#minutes-notion").inner_text()
    assert "RELGOV_NOTION_MEETINGS_DATABASE_ID" in text and "Nothing is queued" in text
    assert page.locator("button[data-action=publish-minutes]").count() == 0
    panel_at_both_widths(page, "minutes-not-configured")
