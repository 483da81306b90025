"""Incidents in a real browser: an incident at a beta store blocks the promotion of the
release in beta until an admin overrides the gate (with a reason, highlighted) or the
incident is resolved."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from service.releases.models import Release
from tests.browser.conftest import log_in, screenshot
from tests.builders import PASSWORD, make_user
from tests.service.incidents.conftest import build_world

pytestmark = pytest.mark.browser


@pytest.fixture
def beta_release(session: Session) -> Release:
    """POS 3.12.0 in beta for 30 days with its gates on (threshold 5); S0001/S0002 of eight
    stores in beta."""
    world = build_world(session, stores=8, promotion_gates=True, incident_score_threshold=5)
    make_user(session, email="rm@example.com", role="release_manager", name="Ren Manager")
    make_user(session, email="root@example.com", role="admin", name="Aiko Admin")
    return world.beta


def record_beta_incident(page) -> str:  # type: ignore[no-untyped-def]
    page.goto("/incidents")
    page.click("text=Record an incident")
    page.select_option("select[name=app]", "pos")
    page.fill("input[name=title]", "Kitchen tickets print twice after the printer reconnects")
    page.check("input[name=impact][value='5']")
    page.fill("textarea[name=stores]", "S0001")
    screenshot(page, "incidents-new")
    page.click("button:has-text('Record and score')")
    page.wait_for_selector("text=Score 5 = impact 5 × scope 1")
    assert page.locator("text=suggested").count() >= 1  # 3.12.0 from S0001's device
    screenshot(page, "incidents-detail")
    return page.url


def promote(page, release_id: int) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"/releases/{release_id}")
    page.click("details[data-action=promote] > summary")  # says what will happen, then asks
    page.click("button[data-yes=promote]")


def test_beta_incident_blocks_promotion_until_overridden(page, beta_release) -> None:
    log_in(page, "rm@example.com", PASSWORD)
    record_beta_incident(page)
    promote(page, beta_release.id)
    flash = page.locator(".flash-error").first
    assert "1 promotion gate not met" in flash.inner_text()
    assert "Beta incidents" in flash.inner_text()
    assert page.locator("#gate-incident_score .badge.bad").inner_text() == "failed"
    page.locator("#gates").scroll_into_view_if_needed()
    screenshot(page, "incidents-release-blocked")

    page.click("button:has-text('Log out')")
    log_in(page, "root@example.com", PASSWORD)
    page.goto(f"/releases/{beta_release.id}#gates")
    form = page.locator("#gate-incident_score form.override-gate")
    form.locator("input[name=reason]").fill("Config hotfix pushed to both beta stores; verified")
    form.locator("button").click()
    assert "Overrode the gate" in page.locator(".flash-warning").first.inner_text()
    row = page.locator("#gate-incident_score")
    assert "highlight" in (row.get_attribute("class") or "")
    assert "Config hotfix pushed" in row.inner_text()
    screenshot(page, "incidents-release-overridden")
    promote(page, beta_release.id)
    assert "is now rolling out" in page.locator(".flash-success").first.inner_text()
    page.goto("/audit")
    assert page.locator("text=OVERRIDE gate").count() >= 1


def test_beta_incident_blocks_promotion_until_resolved(page, beta_release) -> None:
    log_in(page, "rm@example.com", PASSWORD)
    incident_url = record_beta_incident(page)
    promote(page, beta_release.id)
    assert "promotion gate not met" in page.locator(".flash-error").first.inner_text()
    page.goto(incident_url)
    page.fill("input[name=postmortem_url] >> nth=0", "https://notion.example.com/pm/tickets")
    page.click("button:has-text('Mark resolved')")
    assert "is resolved" in page.locator(".flash-success").first.inner_text()
    promote(page, beta_release.id)
    assert "is now rolling out" in page.locator(".flash-success").first.inner_text()
    page.goto("/incidents/trend/pos")
    page.wait_for_selector("#trend-chart")
    screenshot(page, "incidents-trend")
    page.goto("/incidents")
    screenshot(page, "incidents-list")


def test_halt_from_an_incident(page, beta_release) -> None:
    log_in(page, "rm@example.com", PASSWORD)
    record_beta_incident(page)
    page.click("details.halt-step > summary")  # says what a halt does, then asks
    page.click("button[data-yes=halt]")
    assert "Halted POS register 3.12.0" in page.locator(".flash-warning").first.inner_text()
    assert "halted" in page.locator("h1").inner_text()
