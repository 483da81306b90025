"""Notes in a real browser: live preview, the Preview button, the diff, saving; apps pages."""

from __future__ import annotations

import pytest

from service.releases.apps import create_app_record
from tests.browser.conftest import log_in, screenshot
from tests.builders import PASSWORD, make_user
from tests.service.releases.release_fixtures import build_repo, registered_release

pytestmark = pytest.mark.browser


@pytest.fixture
def release(app, session, tmp_path):
    repo = build_repo(tmp_path / "pos-repo")
    engineer = make_user(session, email="eng@example.com", role="engineer", name="Kenji Engineer")
    with app.app_context():
        pos = create_app_record(
            session,
            slug="pos",
            name="POS register",
            actor="test",
            repo_url=str(repo.path),
            area_map="order = Ordering\npayment = Payments\nmenu = Menu",
            pr_url_template="https://github.com/example/pos/pull/{number}",
        )
        session.commit()
    return registered_release(app, session, pos, engineer)


def test_edit_notes_with_live_preview_and_diff(page, release):
    alerts = []
    page.on("dialog", lambda dialog: (alerts.append(dialog.message), dialog.dismiss()))
    log_in(page, "eng@example.com", PASSWORD)
    page.goto(f"/releases/{release.id}/notes")
    page.wait_for_selector("h1:has-text('Release notes')")
    preview = page.locator("#preview")
    assert "sold-out badge" in preview.inner_text()
    assert "<script>" in preview.inner_text()  # shown as text, never run
    assert page.locator("#preview script, #preview img").count() == 0
    screenshot(page, "notes-generated")

    area = page.locator("#markdown")
    text = area.input_value()
    area.fill(
        text.replace(
            "## Fixes", "> **For store staff:** tips are now rounded per guest.\n\n## Fixes"
        )
    )
    page.wait_for_selector("#preview blockquote:has-text('For store staff')")
    page.wait_for_selector("#diff .add:has-text('For store staff')")
    assert "not saved yet" in page.locator("#preview-status").inner_text()

    page.click("button[value=preview]")
    page.wait_for_selector("text=previewing unsaved text")
    assert "For store staff" in page.locator("#preview").inner_text()
    screenshot(page, "notes-preview-and-diff")

    page.click("button[value=save]")
    page.wait_for_selector("text=Saved your edit of the notes.")
    assert page.locator(".notes-meta .badge.info:has-text('edited')").count() == 1
    page.wait_for_selector("#diff .add:has-text('For store staff')")
    screenshot(page, "notes-saved")
    assert alerts == []


def test_apps_settings_and_checklist_editor(page, release, admin):
    log_in(page, admin.email, PASSWORD)
    page.goto("/apps")
    page.wait_for_selector("text=POS register")
    screenshot(page, "apps-list")
    page.goto("/apps/pos")
    page.fill("input[name=rollout_stages]", "50, 10")
    page.click("button:has-text('Save settings')")
    page.wait_for_selector("text=stages must increase")
    screenshot(page, "app-settings-error")
    page.fill("input[name=rollout_stages]", "5, 25, 100")
    page.click("button:has-text('Save settings')")
    page.wait_for_selector("text=Saved the settings of POS register.")
    page.locator("details.skip summary").first.click()
    page.locator("details.skip input[name=reason]").first.fill("Year-end freeze")
    page.locator("details.skip button:has-text('Skip')").first.click()
    page.wait_for_selector("text=No POS register train in the week of")
    screenshot(page, "app-settings")
    page.goto("/apps/pos/checklists/weekly")
    page.fill("input[name=title-9]", "Store managers briefed")
    page.select_option("select[name=owner_role-9]", "support")
    page.click("button:has-text('Save as version 2')")
    page.wait_for_selector("text=as version 2")
    assert page.locator("input[value='Store managers briefed']").count() == 1
    screenshot(page, "checklist-editor")
