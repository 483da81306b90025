"""An app's repository must be a place the settings allow (RELGOV_REPO_ROOT,
RELGOV_REPO_ALLOWED_HOSTS): refused on the page, in the API and in the services alike,
naming ``repo_url``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session, select

from service.models import AuditEvent
from service.releases.apps import AppError, create_app_record, update_app_record
from service.releases.models import App
from service.settings import Settings
from tests.builders import csrf_header, login, post_form


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, repo_allowed_hosts=("git.internal", "127.0.0.1:8080"))


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("https://github.com/org/pos.git", None),
        ("git@github.com:org/pos.git", None),
        ("ssh://git@git.example.com:2222/pos.git", None),
        ("http://git.internal/pos.git", None),
        ("http://127.0.0.1:8080/pos.git", None),
        ("{root}/repos-of-apps/pos.git", None),
        ("file://{root}/repos-of-apps/pos.git", None),
        ("", None),  # no repository yet
        ("http://github.com/org/pos.git", "http:// is allowed only for the hosts"),
        ("http://127.0.0.1:9999/pos.git", "http:// is allowed only for the hosts"),
        ("https://169.254.169.254/latest/meta-data/", "link-local address"),
        ("https://127.0.0.1/pos.git", "loopback address"),
        ("https://localhost:8443/pos.git", "loopback address"),
        ("git://github.com/org/pos.git", "git:// repositories are not allowed"),
        ("/etc", "not under RELGOV_REPO_ROOT"),
        ("{root}/../elsewhere/pos.git", "not under RELGOV_REPO_ROOT"),
        ("file:///srv/other-team/secret.git", "not under RELGOV_REPO_ROOT"),
        ("{root}/repos/pos", "inside the repository cache"),
        ("--upload-pack=touch /tmp/x", "is not a path or URL"),
    ],
)
def test_services_refuse_a_repository_the_settings_do_not_allow(
    app: Flask, session: Session, settings: Settings, url: str, refusal: str | None
) -> None:
    url = url.replace("{root}", str(settings.repo_root_path))
    with app.app_context():
        if refusal is None:
            made = create_app_record(session, slug="pos", name="POS", actor="t", repo_url=url)
            assert made.repo_url == url
            return
        with pytest.raises(AppError, match=refusal) as info:
            create_app_record(session, slug="pos", name="POS", actor="t", repo_url=url)
        assert info.value.field == "repo_url"
        session.rollback()
        made = create_app_record(session, slug="pos", name="POS", actor="t")
        session.commit()
        with pytest.raises(AppError, match=refusal) as info:
            update_app_record(session, app=made, actor="t", repo_url=url)
        assert info.value.field == "repo_url"


def _admin_api(client: FlaskClient, email: str) -> dict[str, str]:
    login(client, email)
    return csrf_header(client)


def test_the_api_answers_422_naming_repo_url(
    client: FlaskClient, session: Session, admin: object
) -> None:
    headers = _admin_api(client, "admin@example.com")
    body = {
        "slug": "pos",
        "name": "POS",
        "settings": {"repo_url": "https://169.254.169.254/latest/meta-data/"},
    }
    refused = client.post("/api/v1/apps", json=body, headers=headers)
    assert refused.status_code == 422, refused.json
    fields = refused.json["error"]["fields"]
    assert [f["field"] for f in fields] == ["repo_url"]
    assert "link-local" in refused.json["error"]["message"]
    assert session.exec(select(App)).first() is None

    body["settings"] = {"repo_url": "https://github.com/org/pos.git"}
    assert client.post("/api/v1/apps", json=body, headers=headers).status_code == 201
    patch = client.patch(
        "/api/v1/apps/pos", json={"settings": {"repo_url": "/etc"}}, headers=headers
    )
    assert patch.status_code == 422
    assert [f["field"] for f in patch.json["error"]["fields"]] == ["repo_url"]
    assert "not under RELGOV_REPO_ROOT" in patch.json["error"]["message"]
    session.expire_all()
    assert session.exec(select(App)).one().repo_url == "https://github.com/org/pos.git"
    assert not session.exec(select(AuditEvent).where(AuditEvent.action == "app.update")).all()


def test_the_form_shows_the_refusal_next_to_the_repository(
    admin_client: FlaskClient, session: Session, tmp_path: Path
) -> None:
    form = {
        "slug": "pos",
        "name": "POS register",
        "repo_url": "http://github.com/org/pos.git",
        "default_branch": "main",
        "version_scheme": "semver",
        "area_map": "",
        "pr_url_template": "",
        "train_weekday": "2",
        "train_time": "14:00",
        "train_timezone": "Asia/Tokyo",
        "min_supported_version": "",
        "rollout_stages": "10, 50, 100",
        "beta_adoption_target": "80",
        "beta_stall_hours": "48",
        "beta_soak_days": "2",
        "incident_score_threshold": "6",
    }
    refused = post_form(admin_client, "/apps/new", form)
    assert refused.status_code == 422
    html = refused.get_data(as_text=True)
    assert "http:// is allowed only for the hosts in RELGOV_REPO_ALLOWED_HOSTS" in html
    assert 'aria-invalid="true"' in html
    assert session.exec(select(App)).first() is None
    ok = post_form(admin_client, "/apps/new", form | {"repo_url": str(tmp_path / "pos.git")})
    assert ok.status_code == 302
