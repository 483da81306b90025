"""The weekly meeting in a real browser, as a release manager runs it: open the week, open
the meeting, decide each release (go with conditions, defer), record who attended and the
minutes, add an action item, close the meeting, and read the week back. Screenshots of
every page at 1366 and 1024 pixels wide."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session

from service.meetings.inbox import next_meeting
from service.meetings.weeks import Week, week_at
from service.models import User, utcnow
from service.releases import checklist
from service.releases.models import App
from tests.browser.conftest import SCREENSHOTS, log_in, screenshot
from tests.builders import PASSWORD, add_release
from tests.service.releases.release_fixtures import (
    build_repo,
    make_app_with_checklist,
    registered_release,
)
from tests.service.releases.release_fixtures import people as people

pytestmark = pytest.mark.browser
TOKYO = ZoneInfo("Asia/Tokyo")


def both_widths(page, name: str) -> None:  # type: ignore[no-untyped-def]
    screenshot(page, name)
    page.set_viewport_size({"width": 1024, "height": 850})
    screenshot(page, f"{name}-1024")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1024, f"{name} is {width} px wide at 1024"
    page.set_viewport_size({"width": 1366, "height": 850})


@pytest.fixture
def week() -> Week:
    return week_at(utcnow(), TOKYO)


@pytest.fixture
def agenda(app, session: Session, tmp_path, people: dict[str, User], week: Week):  # type: ignore[no-untyped-def]
    """Two releases on this week's train: 1.1.0 fully signed, 1.2.0 not."""
    pos: App = make_app_with_checklist(session, build_repo(tmp_path / "repo").path)
    ready = registered_release(app, session, pos, people["engineer"], submit=True)
    with app.app_context():
        for item in checklist.release_items(session, ready):
            if item.mode == "manual" and item.required:
                owner = next(u for u in people.values() if u.role == item.owner_role)
                checklist.sign_off(
                    session, release=ready, item=item, user=owner, decision="approve"
                )
        session.commit()
    wednesday = datetime.combine(week.monday + timedelta(days=2), time(14), tzinfo=TOKYO)
    ready.scheduled_for = wednesday
    session.add(ready)
    session.commit()
    later = add_release(
        session, pos, "1.2.0", "in_review", scheduled_for=wednesday, git_ref="v1.1.0",
        created_at=utcnow() - timedelta(days=2),
    )  # fmt: skip
    return ready, later


def test_run_a_weekly_meeting(page, app, agenda, week: Week, session: Session) -> None:  # type: ignore[no-untyped-def]
    ready, _ = agenda
    with app.app_context():
        upcoming = next_meeting(session).week  # this week's, or next once Wednesday is over
    page.on("dialog", lambda dialog: dialog.accept())
    log_in(page, "release_manager@example.com", PASSWORD)
    # "Waiting for you": both releases wait for this week's decision.
    page.goto("/")
    inbox = page.locator("#inbox")
    assert f"For the meeting of {upcoming}" in inbox.inner_text()
    assert inbox.locator("tr[data-kind=decision]").count() == 2
    both_widths(page, "dashboard-inbox-rm")
    inbox.locator("tr[data-kind=decision] a").first.click()
    page.wait_for_url(f"**/meetings/{upcoming}#release-*")
    page.click("nav >> text=Meeting")
    page.wait_for_url(f"**/meetings/{week}")
    assert "not opened" in page.inner_text("h1")
    assert "Not opened yet: the agenda below is live" in page.inner_text("#status")
    both_widths(page, "meeting-week-live")

    page.click("button[data-action=open-meeting]")
    page.wait_for_selector("text=Opened the meeting")
    first = page.locator("article[data-release='1.1.0']")
    first.locator("input[value=go_with_conditions]").check()
    first.locator("input[name=reason]").fill("Checklist complete; support briefed.")
    first.locator("textarea[name=conditions]").fill("Halt at the first printer complaint.")
    first.locator("button", has_text="Record the decision").click()
    page.wait_for_selector("text=It is now approved")

    second = page.locator("article[data-release='1.2.0']")
    second.locator("input[value=defer]").check()
    second.locator("input[name=reason]").fill("QA has not run the regression suite yet.")
    second.locator("button", has_text="Record the decision").click()
    page.wait_for_selector("text=Moved to the train of")

    page.click("text=Record who attended")
    page.check("input[name=people][value='qa@example.com']")
    page.fill("input[name=guests]", "Tanaka (store owner)")
    page.click("button:has-text('Save attendees')")
    page.wait_for_selector("text=Attendees saved")
    page.fill("textarea[name=minutes]", "Walked the checklist; 1.2.0 waits for QA.")
    page.click("button:has-text('Save the minutes')")
    page.wait_for_selector("text=Minutes saved")

    page.fill("input[name=title]", "Run the regression suite on 1.2.0")
    page.select_option("select[name=owner]", "qa@example.com")
    page.fill("input[name=due_on]", (week.monday + timedelta(days=4)).isoformat())
    page.click("button:has-text('Create the action item')")
    page.wait_for_selector("text=Action item #")
    assert "Run the regression suite on 1.2.0" in page.inner_text("#actions")
    both_widths(page, "meeting-open")

    page.click("button[data-action=close-meeting]")
    page.wait_for_selector("text=It now reads back as decided")
    assert "closed" in page.inner_text("h1")
    assert page.locator("button", has_text="Record the decision").count() == 0
    # The meeting's Slack messages, at the foot of the page, with their delivery (no Slack
    # here: recorded in the outbox as "not configured").
    page.click("#messages summary")
    messages = page.locator("#messages tr[data-message]")
    assert messages.count() == 5  # opened, two decisions, the action item, closed
    assert "Go with conditions" in page.inner_text("#messages")
    assert page.locator("#messages tr[data-state=not_configured]").count() == 5
    assert "Not configured" in page.inner_text("#messages")
    shown = page.inner_text("#messages")
    assert "would go to the meetings channel (none set)" in shown
    assert shown.count("set SLACK_BOT_TOKEN") == 0  # said once above the table, not per row
    assert ":ballot_box_with_check:" not in page.inner_text("#messages")  # emoji codes left out
    both_widths(page, "meeting-closed-messages")
    for width in (1366, 1024):  # the messages alone, to look at them closely
        page.set_viewport_size({"width": width, "height": 850})
        page.locator("#messages").screenshot(
            path=str(SCREENSHOTS / f"meeting-slack-messages-{width}.png")
        )
    page.set_viewport_size({"width": 1366, "height": 850})

    # The release moves on; the past week still shows what the meeting saw and decided.
    session.refresh(ready)
    assert ready.state == "approved"
    ready.state = "beta"
    session.add(ready)
    session.commit()
    page.click(f"text={week.shifted(1)} →")
    nxt = page.locator("article[data-release='1.2.0']")
    assert f"deferred in {week}" in nxt.inner_text()
    assert "Run the regression suite on 1.2.0" in page.inner_text("#actions")
    both_widths(page, "meeting-next-week")
    page.click(f"text=← {week}")
    back = page.locator("article[data-release='1.1.0']")
    assert "in review" in back.locator(".agenda-head").inner_text()  # as it was then
    assert "Halt at the first printer complaint." in back.inner_text()
    assert "Tanaka (store owner)" in page.inner_text("#attendees")
    both_widths(page, "meeting-closed")
    page.goto("/meetings")
    assert str(week) in page.inner_text("table")
    both_widths(page, "meetings-index")
    page.goto(f"/releases/{ready.id}")
    assert "Go with conditions" in page.inner_text("#meeting + article")

    # QA's dashboard: the action item, for next week's meeting (this week's is closed).
    page.click("button:has-text('Log out')")
    log_in(page, "qa@example.com", PASSWORD)
    page.goto("/")
    inbox = page.locator("#inbox")
    assert f"For the meeting of {week.shifted(1)}" in inbox.inner_text()
    assert "Run the regression suite on 1.2.0" in inbox.inner_text()
    both_widths(page, "dashboard-inbox-qa")


def test_a_bad_week_is_refused_with_a_message(page, agenda) -> None:  # type: ignore[no-untyped-def]
    log_in(page, "viewer@example.com", PASSWORD)
    response = page.goto("/meeting?week=12/10/2026")
    assert response is not None and response.status == 400
    assert "is not a week" in page.inner_text("#week-error")
    page.fill("input#week", "2026-10-12")
    page.click("button:has-text('Go')")
    page.wait_for_url("**/meetings/2026-W42")
