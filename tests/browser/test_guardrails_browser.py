"""Issue 18 guardrails in a real browser: each risky move opens a step that says what will
happen and asks "Yes, …" before anything moves; "Mark released" mid-rollout names the stores
that jump and takes a labelled reason; the same holds with JavaScript off (the server asks).
Screenshots of the release page at 1366 and 1024 px show the decision area on one screen."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from beta import store as fleet
from service.models import utcnow
from service.releases.lifecycle import Actor, transition
from service.releases.models import Release
from tests.browser.conftest import log_in, screenshot
from tests.builders import PASSWORD
from tests.service.releases.release_fixtures import (
    build_repo,
    make_app_with_checklist,
    registered_release,
)
from tests.service.releases.release_fixtures import people as people

pytestmark = pytest.mark.browser
RM = Actor("user:release_manager@example.com", role="release_manager")


@pytest.fixture
def stores(session: Session) -> None:
    now = utcnow()
    for n in range(1, 13):
        made = fleet.create_store(
            session=session, external_id=f"S{n:04d}", name=f"Store {n}", actor="t", now=now
        )
        if n <= 2:
            fleet.enrol_store(session=session, store=made.store, reason="pilot", actor="t", now=now)
    session.commit()


@pytest.fixture
def in_review(app, session, tmp_path, people):
    pos = make_app_with_checklist(session, build_repo(tmp_path / "repo").path)
    return registered_release(app, session, pos, people["engineer"], submit=True)


def _sign_everything(app, session, release, people) -> None:
    from service.releases import checklist

    with app.app_context():
        for status in checklist.item_statuses(session, release):
            if status.item.mode == "manual":
                signer = next(u for u in people.values() if u.role == status.item.owner_role)
                checklist.sign_off(
                    session, release=release, item=status.item, user=signer, decision="approve"
                )
        session.commit()


def test_approve_opens_a_step_that_says_what_happens_then_asks(
    page, app, session, in_review, people, stores
):
    _sign_everything(app, session, in_review, people)
    log_in(page, "rm2@example.com", PASSWORD)
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"/releases/{in_review.id}")
    decision = page.locator("#decision")
    box = decision.bounding_box()
    assert box is not None and box["y"] + box["height"] <= 768, box  # on one screen
    screenshot(page, "release-decision-1366")
    step = page.locator("details[data-action=approve]")
    assert not step.locator("button[data-yes=approve]").is_visible()
    step.locator("summary").click()
    assert "the checklist closes" in step.inner_text()
    screenshot(page, "release-approve-step-1366")
    session.expire_all()
    assert session.get(Release, in_review.id).state == "in_review"  # opening the step moved nothing
    step.locator("button[data-yes=approve]").click()
    page.wait_for_selector("text=is now approved")
    page.set_viewport_size({"width": 1024, "height": 768})
    page.goto(f"/releases/{in_review.id}")
    screenshot(page, "release-approved-1024")


def test_mark_released_mid_rollout_names_the_stores_and_needs_a_labelled_reason(
    page, app, session, in_review, people, stores
):
    _sign_everything(app, session, in_review, people)
    with app.app_context():
        for action in ("approve", "start_beta", "promote"):
            transition(session, in_review, action, actor=RM)
        session.commit()
    log_in(page, "release_manager@example.com", PASSWORD)
    page.goto(f"/releases/{in_review.id}")
    step = page.locator("details[data-action=complete]")
    step.locator("summary").click()
    text = step.inner_text()
    assert "The rollout is at 10 %" in text and "jump to this release at once" in text
    reason = page.get_by_label("Reason for “Mark released” (required)")
    assert reason.is_visible()
    screenshot(page, "release-mark-released-step-1366")
    step.locator("button[data-yes=complete]").click()  # empty reason: the browser asks
    missing = "document.querySelector('details[data-action=complete] [name=reason]')"
    assert page.evaluate(missing + ".validity.valueMissing")
    session.expire_all()
    assert session.get(Release, in_review.id).state == "rolling_out"
    reason.fill("payment fix must reach every store tonight")
    step.locator("button[data-yes=complete]").click()
    page.wait_for_selector("text=is now released")


def test_without_javascript_the_server_asks_before_halting(
    browser, live_server, app, session, in_review, people, stores
):
    _sign_everything(app, session, in_review, people)
    with app.app_context():
        for action in ("approve", "start_beta"):
            transition(session, in_review, action, actor=RM)
        session.commit()
    context = browser.new_context(
        java_script_enabled=False, base_url=live_server, viewport={"width": 1024, "height": 768}
    )
    tab = context.new_page()
    try:
        log_in(tab, "release_manager@example.com", PASSWORD)
        tab.goto(f"/releases/{in_review.id}")
        step = tab.locator("details[data-action=halt]")
        step.locator("summary").click()
        tab.get_by_label("Reason for “Halt” (required)").fill("tickets print twice")
        step.locator("button[data-yes=halt]").click()
        tab.wait_for_selector("text=is now halted")
        # A form that arrives without the confirmation (an old page) gets the step instead.
        tab.goto(f"/releases/{in_review.id}")
        tab.locator("details[data-action=resume] > summary").click()
        tab.get_by_label("Reason for “Resume” (required)").fill("fixed in build 3")
        tab.locator("details[data-action=resume] button").click()
        tab.wait_for_selector("text=is now beta")
        session.expire_all()
        assert session.get(Release, in_review.id).state == "beta"
        screenshot(tab, "release-beta-nojs-1024")
    finally:
        context.close()
