"""Search in a real browser: from the box in the dashboard's header to the results (matches
highlighted), then to the entry in the release's notes; the results page at 1366 and 1024
pixels wide; the store-facing changes across versions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlmodel import Session

from service.incidents import services as incidents
from service.models import User
from service.releases.models import App, Release
from tests.browser.conftest import log_in, screenshot
from tests.builders import PASSWORD
from tests.service.search.conftest import pos, releases, repo, team  # noqa: F401

pytestmark = pytest.mark.browser


@pytest.fixture
def world(
    app: Flask,
    session: Session,
    pos: App,  # noqa: F811
    team: dict[str, User],  # noqa: F811
    releases: dict[str, Release],  # noqa: F811
) -> dict[str, Release]:
    with app.app_context():
        incidents.record_incident(
            session,
            app=pos,
            title="割り勘の会計で端数が合わない店舗がある",
            impact=3,
            store_count=4,
            started_at=datetime(2026, 3, 6, 12, tzinfo=UTC),
            actor="user:support@example.com",
            release=releases["1.1.0"],
            thresholds=incidents.scope_thresholds(),
        )
        session.commit()
    return releases


def test_search_from_the_dashboard_to_the_notes(page, world) -> None:  # type: ignore[no-untyped-def]
    log_in(page, "support@example.com", PASSWORD)
    page.wait_for_selector("h1:has-text('Dashboard')")
    box = page.locator("header form[role=search] input[name=q]")
    box.fill("割り勘")
    box.press("Enter")
    page.wait_for_selector("ol.hits")
    assert "results for" in page.locator(".search-summary").inner_text()
    marks = page.locator("ol.hits mark")
    assert marks.count() >= 3 and marks.first.inner_text() == "割り勘"
    first = page.locator("ol.hits li.hit").first
    assert "Store-facing" in first.inner_text() and "1.1.0" in first.inner_text()
    assert page.locator("ol.hits li.hit-incident").count() == 1
    # The header box keeps the words, for a second search.
    assert box.input_value() == "割り勘"
    for width in (1366, 1024):
        page.set_viewport_size({"width": width, "height": 800})
        screenshot(page, f"search-results-{width}")
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= width, f"at {width} px the page scrolls sideways ({wide} px)"

    first.locator("a.hit-link").click()
    page.wait_for_selector("h1:has-text('Release notes')")
    assert "/notes" in page.url and ":~:text=" in page.url
    preview = page.locator("#preview").inner_text()
    assert "割り勘の端数が正しく配分されるようになりました。" in preview
    screenshot(page, "search-opened-result")


@pytest.mark.parametrize("width", [1366, 1024])
def test_the_header_fits_with_the_search_box(page, world, admin, width) -> None:  # type: ignore[no-untyped-def]
    """An admin has the most links in the header."""
    page.set_viewport_size({"width": width, "height": 700})
    log_in(page, admin.email, PASSWORD)
    page.wait_for_selector("h1:has-text('Dashboard')")
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= width, f"at {width} px the page scrolls sideways ({wide} px)"
    assert page.locator("header form[role=search] input").is_visible()
    screenshot(page, f"search-header-admin-{width}")


def test_filters_and_a_refused_filter(page, world) -> None:  # type: ignore[no-untyped-def]
    log_in(page, "viewer@example.com", PASSWORD)
    page.goto("/search?q=split")
    page.select_option("select[name=kind]", "store")
    page.click("form.search-form button[type=submit]")
    page.wait_for_selector("ol.hits")
    badges = page.locator(".hit-meta .badge[class*=kind-]").all_inner_texts()
    assert {t.strip() for t in badges} == {"Store-facing"}
    page.fill("input[name=since]", "2026-03-10")
    page.fill("input[name=until]", "2026-03-01")
    page.click("form.search-form button[type=submit]")
    page.wait_for_selector(".field-error")
    assert "before its start" in page.locator(".field-error").inner_text()
    screenshot(page, "search-refused-filter")


def test_store_changes_between_versions(page, world) -> None:  # type: ignore[no-untyped-def]
    log_in(page, "support@example.com", PASSWORD)
    page.goto("/search")
    page.click("text=What changed for stores between two versions")
    page.select_option("select[name=app]", "pos")
    page.fill("input[name=from_version]", "1.1.0")
    page.fill("input[name=to_version]", "1.2.0")
    page.click("button:has-text('Show')")
    page.wait_for_selector("section.store-release")
    headings = page.locator("section.store-release h2 a").all_inner_texts()
    assert headings == ["1.1.0", "1.2.0"]
    assert "会計画面で 8% と 10% の内訳が見られます。" in page.locator("main").inner_text()
    screenshot(page, "search-store-changes")
