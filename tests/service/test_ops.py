import pytest
from sqlalchemy import text

from service.settings import Settings, SettingsError


def test_metrics_count_requests_by_endpoint_and_status(client):
    client.get("/healthz")
    client.get("/api/v1/nothing-here")
    body = client.get("/metrics").get_data(as_text=True)
    assert 'relgov_http_requests_total{endpoint="ops.healthz",method="GET",status="2xx"}' in body
    assert 'endpoint="unmatched",method="GET",status="4xx"' in body
    assert 'relgov_http_request_duration_seconds_bucket{endpoint="ops.healthz"' in body


def test_healthz_reports_a_broken_database(app, client):
    engine = app.extensions["relgov.engine"]
    engine.dispose()
    app.extensions["relgov.engine"] = type(engine).__new__(type(engine))  # unusable engine
    try:
        response = client.get("/healthz")
    finally:
        app.extensions["relgov.engine"] = engine
    assert response.status_code == 503
    assert response.json["status"] == "error"


def test_migrations_match_the_models(app):
    from service import migrate

    assert migrate.pending_differences(app.extensions["relgov.engine"]) == []


def test_sqlite_has_foreign_keys_and_wal(app):
    engine = app.extensions["relgov.engine"]
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite pragmas")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


@pytest.mark.parametrize("key", ["", "changeme", "short"])
def test_production_refuses_a_placeholder_secret(key, tmp_path):
    settings = Settings(env="production", secret_key=key, instance_path=tmp_path)
    with pytest.raises(SettingsError, match="RELGOV_SECRET_KEY"):
        settings.checked()


def test_development_makes_and_keeps_a_secret(tmp_path):
    first = Settings(env="development", instance_path=tmp_path).checked().secret_key
    second = Settings(env="development", instance_path=tmp_path).checked().secret_key
    assert first == second and len(first) >= 32


def test_settings_from_env():
    settings = Settings.from_env(
        {
            "RELGOV_ENV": "production",
            "RELGOV_DATABASE_URL": "postgresql+psycopg://u:p@localhost/relgov",
            "RELGOV_SECRET_KEY": "k" * 40,
            "NOTION_TOKEN": "secret_x",
            "NOTION_DATABASE_ID": "abc",
        }
    )
    assert settings.database_url.startswith("postgresql+psycopg")
    assert settings.secure_cookies and settings.notion_configured
    with pytest.raises(SettingsError, match="RELGOV_ENV"):
        Settings.from_env({"RELGOV_ENV": "staging"})
    with pytest.raises(SettingsError, match="RELGOV_SESSION_HOURS"):
        Settings.from_env({"RELGOV_SESSION_HOURS": "soon"})
