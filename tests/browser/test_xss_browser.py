"""Hostile HTML/JS in commit messages, note edits, store names and CSV cells is shown as text
in a real browser and never runs: ``window.__xss`` stays undefined, no dialog opens, no
``javascript:`` link or event-handler attribute reaches the page, and the CSP reports nothing.
"""

from __future__ import annotations

import pytest

from beta import store as fleet
from service.models import utcnow
from service.releases import services
from service.releases.apps import create_app_record
from tests.browser.conftest import log_in, screenshot
from tests.builders import PASSWORD, make_token, make_user, run_jobs
from tests.release_notes.git_repo_builder import GitRepo

pytestmark = pytest.mark.browser

SCRIPT = "<script>window.__xss=1</script>"
IMG = '<img src=x onerror="window.__xss=1">'
SVG = '"><svg onload=window.__xss=1>'
LINK = "[click me](javascript:window.__xss=1)"
ALL = [SCRIPT, IMG, SVG]


@pytest.fixture
def hostile(app, session, tmp_path):
    repo = GitRepo(tmp_path / "pos-repo")
    repo.commit("feat(order): split bills (#10)")
    repo.tag("v1.0.0")
    repo.commit(f"feat(menu): {SCRIPT} sold-out badge (#12)")
    repo.commit(f"fix(payment): {IMG} round tips (#13)")
    repo.commit(f"fix(order): {SVG} table map (#14)")
    repo.commit(f'docs: see {LINK} and <a href="javascript:window.__xss=1">here</a>')
    repo.tag("v1.1.0")
    admin = make_user(session, email="admin@example.com", role="admin", name="Ada Admin")
    with app.app_context():
        pos = create_app_record(
            session, slug="pos", name="POS register", actor="test", repo_url=str(repo.path)
        )
        release, _ = services.register_release(
            session, app=pos, version="1.1.0", git_ref="v1.1.0", actor=services.actor_for(admin)
        )
        fleet.create_store(
            session=session,
            external_id="S0666",
            name=f"{IMG}{SVG}",
            region=SCRIPT,
            actor="test",
            now=utcnow(),
        )
        session.commit()
    run_jobs(app)  # the notes, from git
    session.refresh(release)
    return release


def watch(page):  # type: ignore[no-untyped-def]
    """Record dialogs and console errors (CSP violations are console errors)."""
    seen: dict[str, list[str]] = {"dialogs": [], "console": []}
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.on(
        "console",
        lambda m: seen["console"].append(m.text) if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: seen["console"].append(str(e)))
    return seen


def assert_inert(page, seen) -> None:  # type: ignore[no-untyped-def]
    assert page.evaluate("typeof window.__xss") == "undefined", page.url
    assert seen["dialogs"] == [], page.url
    assert page.locator("a[href^='javascript:' i]").count() == 0, page.url
    assert page.locator("[onerror], [onload], [onclick], svg, img[src=x]").count() == 0, page.url
    assert [m for m in seen["console"] if "Content Security Policy" in m] == [], page.url


def test_commit_messages_and_note_edits_stay_text(page, hostile):
    seen = watch(page)
    log_in(page, "admin@example.com", PASSWORD)
    for path in (f"/releases/{hostile.id}/notes", f"/releases/{hostile.id}", "/notes", "/"):
        page.goto(path)
        page.wait_for_load_state("load")
        assert_inert(page, seen)

    page.goto(f"/releases/{hostile.id}/notes")
    shown = page.locator("#preview").inner_text()
    for text in (SCRIPT, IMG, SVG.lstrip('">')):
        assert text in shown, text  # escaped: visible as the characters that were written
    assert "click me" in shown
    screenshot(page, "xss-notes-generated")

    area = page.locator("#markdown")
    edit = (
        f"{area.input_value()}\n\n## Staff\n\n- {SCRIPT} {IMG}\n- {SVG}\n- {LINK}\n"
        "- </textarea><script>window.__xss=1</script>\n"
        '\n<div onmouseover="window.__xss=1">raw html</div>\n'
    )
    area.fill(edit)
    page.wait_for_selector("#preview-status:has-text('preview updated')")
    assert_inert(page, seen)
    page.hover("#preview")
    assert "raw html" in page.locator("#preview").inner_text()

    page.click("button[value=save]")
    page.wait_for_selector("text=Saved your edit of the notes.")
    assert_inert(page, seen)
    assert "</textarea><script>" in page.locator("#markdown").input_value()
    assert "## Staff" in page.locator("#markdown").input_value()
    page.hover("#preview")
    assert_inert(page, seen)
    screenshot(page, "xss-notes-edited")


def test_store_names_and_csv_cells_stay_text(page, hostile):
    seen = watch(page)
    log_in(page, "admin@example.com", PASSWORD)
    for path in ("/beta/stores", "/beta/stores/S0666", "/beta", "/audit"):
        page.goto(path)
        page.wait_for_load_state("load")
        assert_inert(page, seen)
    page.goto("/beta/stores/S0666")
    assert IMG in page.locator("main").inner_text()
    screenshot(page, "xss-store")

    csv = (
        "external_id,name,region,tags\n"
        f'S0777,"{SCRIPT.replace(chr(34), chr(34) * 2)}","{IMG.replace(chr(34), chr(34) * 2)}",a\n'
        f'"{SVG.replace(chr(34), chr(34) * 2)}",Bad id,Osaka,b\n'
    )
    page.goto("/beta/import")
    page.set_input_files(
        "#upload input[type=file]",
        files=[{"name": "stores.csv", "mimeType": "text/csv", "buffer": csv.encode()}],
    )
    page.click("#upload button[type=submit]")
    page.wait_for_selector("#report")
    assert_inert(page, seen)
    assert SVG in page.locator("#rejected").inner_text()
    screenshot(page, "xss-import-report")
    page.click("#report button[type=submit]")
    page.wait_for_load_state("load")
    page.goto("/beta/stores/S0777")
    assert_inert(page, seen)
    assert SCRIPT in page.locator("main").inner_text()


def test_confirm_dialogs_work_without_inline_script(page, session):
    """``data-confirm`` replaces the old onsubmit handlers: dismiss keeps, accept submits."""
    admin = make_user(session, email="admin@example.com", role="admin", name="Ada Admin")
    make_token(session, creator=admin, scopes=["read"], name=f"ci {SCRIPT}")
    answer = {"accept": False}
    asked: list[str] = []

    def on_dialog(dialog) -> None:  # type: ignore[no-untyped-def]
        asked.append(dialog.message)
        dialog.accept() if answer["accept"] else dialog.dismiss()

    page.on("dialog", on_dialog)
    log_in(page, "admin@example.com", PASSWORD)
    page.goto("/admin/tokens")
    page.click("button:has-text('Revoke')")
    page.wait_for_timeout(300)
    assert asked == [f"Revoke ci {SCRIPT}? Clients using it will be refused at once."]
    assert page.locator(".badge.good:has-text('active')").count() == 1
    answer["accept"] = True
    page.click("button:has-text('Revoke')")
    page.wait_for_selector(".badge.bad:has-text('revoked')")
    assert len(asked) == 2
    assert page.evaluate("typeof window.__xss") == "undefined"
