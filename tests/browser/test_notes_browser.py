"""Notes in a real browser: live preview, the Preview button, the diff, saving; apps pages."""

from __future__ import annotations

import pytest

from service.releases import services
from service.releases.apps import create_app_record
from tests.browser.conftest import log_in, screenshot
from tests.builders import PASSWORD, make_user, run_jobs
from tests.release_notes.git_repo_builder import GitRepo
from tests.release_notes.test_notes_readable import DEPENDABOT, dependabot_bump
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


def test_dependency_table_and_already_shipped_read_on_the_notes_page(page, app, session, tmp_path):
    """The notes of 1.1.0 from a hotfix 1.0.1 made on its own branch: the dependency updates
    are one table, the hotfix's fix is "already in v1.0.1", and the page reads at both
    widths."""
    repo = GitRepo(tmp_path / "kds-repo")
    repo.commit("Initial commit", files={"kds.py": "a\n"})
    repo.tag("v1.0.0", annotated=True)
    fix = repo.commit("fix(kds): reprint tickets once (#11)", files={"kds.py": "b\n"})
    for pr, (name, old, new) in enumerate(
        [("serde", "1.0.1", "1.0.2"), ("actions/checkout", "4.2.2", "6.0.2")], start=20
    ):
        repo.commit(dependabot_bump(name, old, new, pr), DEPENDABOT)
    repo.commit("feat(order): split bills for large tables (#12)", files={"order.py": "x\n"})
    repo.tag("v1.1.0", annotated=True)
    repo.branch("hotfix/1.0.x", "v1.0.0")
    repo.cherry_pick(fix)
    repo.tag("v1.0.1", annotated=True)
    repo.checkout("main")
    engineer = make_user(session, email="eng@example.com", role="engineer", name="Kenji Engineer")
    with app.app_context():
        kds = create_app_record(
            session,
            slug="kds",
            name="Kitchen display",
            actor="test",
            repo_url=str(repo.path),
            area_map="order = Ordering\nkds = Kitchen",
            pr_url_template="https://github.com/example/kds/pull/{number}",
        )
        actor = services.actor_for(engineer)
        for version in ("1.0.0", "1.0.1"):
            done, _ = services.register_release(
                session, app=kds, version=version, git_ref=f"v{version}", actor=actor
            )
            done.state = "released"
        release, _ = services.register_release(
            session, app=kds, version="1.1.0", git_ref="v1.1.0", actor=actor
        )
        session.commit()
    run_jobs(app)
    log_in(page, "eng@example.com", PASSWORD)
    page.goto(f"/releases/{release.id}/notes")
    preview = page.locator("#preview")
    page.wait_for_selector("#preview table")
    assert preview.locator("table tbody tr").count() == 2
    assert "2 dependency updates" in preview.inner_text()
    assert "1.0.1 → 1.0.2" in preview.locator("table").inner_text()
    already = preview.locator("h2:has-text('Already in v1.0.1') + ul")
    assert "reprint tickets once" in already.inner_text()
    assert "Bumps" not in preview.inner_text()  # no bot's body
    screenshot(page, "notes-dependencies-and-already-shipped-1366")
    preview.evaluate("el => { el.scrollTop = el.scrollHeight; }")  # the preview scrolls
    screenshot(page, "notes-already-shipped-and-contributors-1366")
    page.set_viewport_size({"width": 1024, "height": 800})
    screenshot(page, "notes-already-shipped-and-contributors-1024")
