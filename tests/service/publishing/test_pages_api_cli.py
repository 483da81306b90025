"""The release partial and its button, /admin/notion, the API and the CLI."""

from dataclasses import replace

from flask import render_template_string

from service import jobs
from service.app import create_app
from service.publishing.views import publish_panel
from tests.builders import login, make_token, make_user, post_form
from tests.fakes.notion_fake import Fault
from tests.service.publishing.conftest import approve, jobs_of, later, make_release, note_of

CREATE = {"method": "POST", "path": r"/v1/pages$"}


# --- release partial and its button -----------------------------------------------------


def test_partial_shows_state_error_and_retry_works(app, admin_client, session, notion, release):
    approve(session, release)
    notion.inject(Fault.http(400, **CREATE))
    jobs.run_once(app, now=later(10))
    html = admin_client.get(f"/test/publish-partial/{release.id}").get_data(as_text=True)
    assert 'data-publish-state="failed"' in html
    assert "Injected validation error." in html
    assert ">Retry</button>" in html
    assert "attempt 1 of 8" in html

    response = post_form(admin_client, f"/releases/{release.id}/publish", {}, page="/admin/notion")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/releases/{release.id}#publishing")
    assert note_of(session, release).publish_state == "queued"
    assert jobs.run_once(app).state == "succeeded"
    html = admin_client.get(f"/test/publish-partial/{release.id}").get_data(as_text=True)
    assert 'data-publish-state="published"' in html
    assert "Open in Notion" in html
    assert ">Publish again</button>" in html
    assert "Injected validation error." not in html


def test_partial_warns_when_the_breaker_is_open(app, admin_client, session, notion, release):
    from service.jobs import breaker

    with app.app_context():
        from service import db

        with db.session_scope() as s:
            for _ in range(breaker.THRESHOLD):
                breaker.record_failure(s, "notion", "503 service_unavailable")
    html = admin_client.get(f"/test/publish-partial/{release.id}").get_data(as_text=True)
    assert "Notion looks unavailable" in html
    assert "circuit breaker open" in html


def test_publish_button_needs_a_role(app, client, session, notion, release):
    make_user(session, email="viewer@example.com", role="viewer")
    login(client, "viewer@example.com")
    html = client.get(f"/test/publish-partial/{release.id}").get_data(as_text=True)
    assert "Publish now" not in html
    response = post_form(client, f"/releases/{release.id}/publish", {}, page="/")
    assert response.status_code == 403
    assert jobs_of(session, release) == []


def test_publish_unknown_release_is_404(admin_client, notion):
    assert post_form(admin_client, "/releases/999/publish", {}, page="/").status_code == 404


def test_partial_says_plainly_when_notion_is_not_configured(settings, session, admin):
    app = create_app(replace(settings, notion_token="", notion_database_id=""))
    try:
        release = make_release(session)
        with app.test_request_context():
            html = render_template_string(
                '{% include "publishing/_release_publish.html" %}',
                release=release,
                panel=publish_panel(session, release),
            )
        assert "Notion is not configured." in html
        client = app.test_client()
        login(client, admin.email)
        page = client.get("/admin/notion").get_data(as_text=True)
        assert "Notion is not configured." in page
    finally:
        app.extensions["relgov.engine"].dispose()


# --- admin page ---------------------------------------------------------------------------


def test_admin_page_checks_schema_and_initialises_it(admin_client, notion_fake):
    page = admin_client.get("/admin/notion").get_data(as_text=True)
    assert 'Token</th><td><span class="badge good">set' in page
    assert notion_fake.database_id in page
    checked = admin_client.get("/admin/notion?check=1").get_data(as_text=True)
    assert "Missing properties: Version, App" in checked
    response = post_form(admin_client, "/admin/notion/init-schema", {})
    assert response.status_code == 302
    checked = admin_client.get("/admin/notion?check=1").get_data(as_text=True)
    assert "has every property the service writes" in checked


def test_admin_page_lists_jobs_and_retries_a_failed_one(
    app, admin_client, session, notion, release
):
    approve(session, release)
    notion.inject(Fault.http(401, method="GET", path="/databases/"))
    failed = jobs.run_once(app, now=later(10))
    page = admin_client.get("/admin/notion").get_data(as_text=True)
    assert "API token is invalid." in page and release.version in page
    assert 'data-breaker="closed"' in page
    response = post_form(admin_client, f"/admin/notion/jobs/{failed.id}/retry", {})
    assert response.status_code == 302
    again = jobs.run_once(app)
    assert again.id != failed.id and again.state == "succeeded"
    assert note_of(session, release).publish_state == "published"


def test_admin_page_is_for_admins(client, session, notion):
    make_user(session, email="rm@example.com", role="release_manager")
    login(client, "rm@example.com")
    assert client.get("/admin/notion").status_code == 403


# --- API ----------------------------------------------------------------------------------


def test_api_publish_and_status(app, client, session, admin, notion, release):
    token = make_token(session, creator=admin, scopes=["releases:write", "read"])
    auth = {"Authorization": f"Bearer {token}"}
    response = client.post(f"/api/v1/releases/{release.id}/publish", headers=auth)
    assert response.status_code == 202, response.json
    body = response.json
    assert body["job"]["state"] == "queued" and body["status"]["state"] == "queued"
    assert jobs.run_once(app).state == "succeeded"
    status = client.get(f"/api/v1/releases/{release.id}/publish", headers=auth).json
    assert status["state"] == "published" and status["notion_url"]
    assert status["job"]["attempts"] == 1 and status["breaker"]["state"] == "closed"


def test_api_errors(client, session, admin, notion):
    read_only = make_token(session, creator=admin, scopes=["read"], name="reader")
    writer = make_token(session, creator=admin, scopes=["releases:write"], name="writer")
    no_notes = make_release(session, with_note=False)
    response = client.post(
        f"/api/v1/releases/{no_notes.id}/publish", headers={"Authorization": f"Bearer {read_only}"}
    )
    assert response.status_code == 403
    headers = {"Authorization": f"Bearer {writer}"}
    response = client.post("/api/v1/releases/999/publish", headers=headers)
    assert response.status_code == 404 and "999" in response.json["error"]["message"]
    response = client.post(f"/api/v1/releases/{no_notes.id}/publish", headers=headers)
    assert response.status_code == 409
    assert "no release notes" in response.json["error"]["message"]


def test_openapi_lists_the_publish_endpoints(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/releases/{release_id}/publish"])


# --- CLI ----------------------------------------------------------------------------------


def test_cli_check_init_schema_publish_and_worker(runner, session, notion_fake):
    result = runner.invoke(args=["notion", "check"])
    assert result.exit_code == 1
    assert "missing properties: Version" in result.output
    result = runner.invoke(args=["notion", "init-schema"])
    assert result.exit_code == 0 and "schema: ok" in result.output, result.output
    assert runner.invoke(args=["notion", "check"]).exit_code == 0

    release = make_release(session)
    result = runner.invoke(args=["notes", "publish", "--release", str(release.id), "--wait"])
    assert result.exit_code == 0, result.output
    assert "published 3.12.0: created" in result.output
    assert len(notion_fake.live_pages()) == 1

    result = runner.invoke(args=["notes", "publish", "--release", str(release.id)])
    assert "queued job" in result.output
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert (
        "succeeded: skipped" in result.output
        and f"ran {1 + len(jobs.kinds_of(runner.app).periodic)} job(s)" in result.output
    )


def test_cli_publish_errors(runner, session, notion):
    result = runner.invoke(args=["notes", "publish", "--release", "999"])
    assert result.exit_code == 2 and "no release with id 999" in result.output
