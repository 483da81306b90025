"""The beta cohort in a real browser: support enrols a store with a reason, the history shows
it, the release manager fills the cohort to 5 % from a preview, a frozen store gets no new
version."""

from __future__ import annotations

import pytest
from sqlmodel import select

from beta import store as fleet
from beta.models import Store
from service.beta import demo
from service.models import utcnow
from service.releases.models import App
from tests.browser.conftest import log_in, screenshot
from tests.builders import PASSWORD, add_release, make_user
from tests.fleet_builders import freeze

pytestmark = pytest.mark.browser


@pytest.fixture
def fleet_data(session):
    app = App(slug="pos", name="POS register", min_supported_version="3.0.0")
    session.add(app)
    session.commit()
    add_release(session, app, "3.11.0", "released")
    add_release(session, app, "3.12.0", "beta")
    now = utcnow()
    for n in range(1, 81):
        region, timezone = ("Osaka", "Asia/Tokyo") if n % 3 else ("Tokyo", "Asia/Tokyo")
        fleet.create_store(
            session=session,
            external_id=f"S{n:04d}",
            name=f"{demo.PREFIXES[n % len(demo.PREFIXES)]} Ramen {n}",
            region=region,
            timezone=timezone,
            tags=["hw:gen3"],
            actor="test",
            now=now,
        )
    frozen = fleet.get_store(session=session, external_id="S0040")
    assert frozen is not None
    fleet.create_device(
        session=session, store=frozen, device_id="S0040-pos-1", kind="pos", actor="t", now=now
    )
    fleet.enrol_store(session=session, store=frozen, reason="pilot", actor="test", now=now)
    freeze(session, frozen, now, reason="New Year's Eve rush", days=2)
    session.commit()


def test_support_enrols_rm_fills_frozen_store_waits(page, session, fleet_data):
    make_user(session, email="support@example.com", role="support", name="Sato Support")
    make_user(session, email="rm@example.com", role="release_manager", name="Ren Manager")

    log_in(page, "support@example.com", PASSWORD)
    page.goto("/beta/stores/S0007")
    page.click("#cohort-form button[value=enrol]")  # no reason: refused, nothing changes
    page.wait_for_selector("text=a reason is required")
    page.fill("#cohort-form input[name=reason]", "owner asked to try new releases first")
    page.click("#cohort-form button[value=enrol]")
    page.wait_for_selector("text=S0007 enrolled in the beta cohort")
    assert "owner asked to try new releases first" in page.inner_text("#store-history")
    assert "3.12.0" in page.inner_text("#offers")
    screenshot(page, "fleet-store-enrolled")
    page.goto("/beta")
    assert "owner asked to try new releases first" in page.inner_text("#cohort-history")
    page.click("text=Log out")

    log_in(page, "rm@example.com", PASSWORD)
    page.goto("/beta")
    page.fill("#fill-form input[name=target]", "5")
    page.select_option("#fill-form select[name=mode]", "percent")
    page.click("#fill-form button[type=submit]")
    page.wait_for_selector("#preview")
    assert "Preview: fill to 4 stores" in page.inner_text("#preview")
    to_add = page.locator("#preview-add tbody tr").all_inner_texts()
    assert session.exec(select(Store).where(Store.in_beta)).all().__len__() == 2  # unchanged
    screenshot(page, "fleet-fill-preview")
    page.fill("#fill-reason", "spring beta: 5 % of stores")
    page.click("#preview button[type=submit]")
    page.wait_for_selector("text=Beta cohort filled to")
    members = page.inner_text("#members")
    for row in to_add:
        assert row.split()[0] in members
    screenshot(page, "fleet-cohort")

    page.goto("/beta/stores/S0040")
    offers = page.inner_text("#offers")
    assert "freeze" in offers and "3.11.0" in offers
    assert "New Year" in offers
    screenshot(page, "fleet-store-frozen")
    page.goto("/beta/stores?in_beta=yes")
    screenshot(page, "fleet-stores")
