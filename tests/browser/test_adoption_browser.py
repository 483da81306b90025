"""The adoption page in Chromium: the charts draw, the tables are there."""

from __future__ import annotations

import pytest

from tests.browser.conftest import log_in, screenshot
from tests.builders import PASSWORD
from tests.service.adoption.conftest import World, build_world

pytestmark = pytest.mark.browser


@pytest.fixture
def world(session) -> World:  # type: ignore[no-untyped-def]
    return build_world(session)


def test_adoption_page_draws_the_charts(page, admin, world: World):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    log_in(page, admin.email, PASSWORD)
    page.wait_for_selector("h1:has-text('Dashboard')")
    page.click("header .mainnav >> text=Adoption")
    page.wait_for_selector("h1:has-text('Version adoption')")
    page.wait_for_selector("body[data-charts-drawn=yes]")
    assert not errors, errors
    for canvas in ("#chart-all", "#chart-beta", "#chart-stable"):
        box = page.locator(canvas).bounding_box()
        assert box and box["width"] > 300 and box["height"] > 150, canvas
    # Something was painted: the canvas is not blank.
    painted = page.evaluate(
        """() => {
            const c = document.getElementById('chart-all');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
            return n / (d.length / 4);
        }"""
    )
    assert painted > 0.2
    assert page.locator("#census table").count() == 3
    assert page.locator("#milestones tbody tr").count() == 5
    assert page.locator("#stragglers").is_visible()
    screenshot(page, "adoption")
    page.click("nav.periods >> text=365 days")
    page.wait_for_selector("body[data-charts-drawn=yes]")
    assert "days=365" in page.url
    screenshot(page, "adoption-365-days")
