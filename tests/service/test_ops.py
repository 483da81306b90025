import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from service import logs
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


def test_repository_settings_from_env(tmp_path):
    """Local repositories live under the instance folder unless told; git gets 60 s."""
    base = {"RELGOV_INSTANCE_PATH": str(tmp_path / "instance")}
    default = Settings.from_env(base)
    assert default.repo_root_path == (tmp_path / "instance").resolve()
    assert default.repo_allowed_hosts == () and default.git_timeout_seconds == 60
    settings = Settings.from_env(
        base
        | {
            "RELGOV_REPO_ROOT": str(tmp_path / "git"),
            "RELGOV_REPO_ALLOWED_HOSTS": " Git.Internal , 127.0.0.1:8080,[::1]:9418,,::1 ",
            "RELGOV_GIT_TIMEOUT_SECONDS": "5",
        }
    )
    assert settings.repo_root_path == (tmp_path / "git").resolve()
    assert settings.repo_allowed_hosts == ("git.internal", "127.0.0.1:8080", "[::1]:9418", "::1")
    assert settings.git_timeout_seconds == 5
    for bad in ("https://git.internal", "host:port", "-x", "a b", "host:70000"):
        with pytest.raises(SettingsError, match="RELGOV_REPO_ALLOWED_HOSTS"):
            Settings.from_env({"RELGOV_REPO_ALLOWED_HOSTS": bad})
    with pytest.raises(SettingsError, match="RELGOV_GIT_TIMEOUT_SECONDS"):
        Settings.from_env({"RELGOV_GIT_TIMEOUT_SECONDS": "0"})


# --- request ids and logs ---------------------------------------------------------------------


@pytest.fixture
def json_log():
    """The service's JSON log handler writing to a buffer, removed afterwards."""
    root = logging.getLogger()
    level = root.level
    buffer = io.StringIO()
    handler = logs.configure("json", "INFO", stream=buffer)
    try:
        yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_request_id_is_taken_when_safe_else_made_up(client):
    made = client.get("/healthz").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{16}", made)
    assert client.get("/healthz").headers["X-Request-ID"] != made
    given = client.get("/healthz", headers={"X-Request-ID": "lb-7f3a.2:9"})
    assert given.headers["X-Request-ID"] == "lb-7f3a.2:9"
    for unsafe in ("x" * 65, "a b", "<script>", "id\u00e9", "-starts-with-dash"):
        answer = client.get("/healthz", headers={"X-Request-ID": unsafe}).headers["X-Request-ID"]
        assert answer != unsafe and re.fullmatch(r"[0-9a-f]{16}", answer)


def test_one_json_line_per_request_and_app_logs_carry_the_request_id(app, client, json_log):
    @app.get("/test/logs")
    def noisy():
        logging.getLogger("service.test").warning("inside the view")
        return "ok"

    response = client.get("/test/logs?x=1", headers={"X-Request-ID": "req-42"})
    assert response.status_code == 200
    records = json_log()
    inner = next(r for r in records if r["message"] == "inside the view")
    assert inner["request_id"] == "req-42" and inner["level"] == "WARNING"
    access = [r for r in records if r["logger"] == "relgov.access"]
    assert len(access) == 1
    line = access[0]
    assert line["method"] == "GET" and line["path"] == "/test/logs" and line["status"] == 200
    assert line["endpoint"] == "noisy" and line["request_id"] == "req-42"
    assert line["actor"] == "anonymous" and line["remote_addr"] == "127.0.0.1"
    assert isinstance(line["duration_ms"], float) and "time" in line


def test_the_access_line_names_the_actor(admin_client, json_log):
    admin_client.get("/healthz")
    [line] = [r for r in json_log() if r["logger"] == "relgov.access"]
    assert line["actor"] == "user:admin@example.com"


def test_log_format_follows_the_environment():
    from service.settings import Settings as S

    assert logs.log_format(S(env="production")) == "json"
    assert logs.log_format(S(env="development")) == "text"
    assert logs.log_format(S(env="test")) is None
    assert logs.log_format(S(env="production", log_format="text")) == "text"
    assert Settings.from_env({"RELGOV_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(SettingsError, match="RELGOV_LOG_FORMAT"):
        Settings.from_env({"RELGOV_LOG_FORMAT": "xml"})


def test_text_logs_carry_the_request_id(client):
    buffer = io.StringIO()
    root, level = logging.getLogger(), logging.getLogger().level
    handler = logs.configure("text", "INFO", stream=buffer)
    try:
        client.get("/healthz", headers={"X-Request-ID": "txt-1"})
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert "INFO relgov.access [txt-1] GET /healthz 200" in buffer.getvalue()


def test_request_metrics_move_and_keep_method_labels_bounded(client):
    def count(body: str) -> float:
        match = re.search(
            r'relgov_http_requests_total\{endpoint="ops.healthz",method="GET",status="2xx"\} (\S+)',
            body,
        )
        return float(match.group(1)) if match else 0.0

    before = count(client.get("/metrics").get_data(as_text=True))
    for _ in range(3):
        client.get("/healthz")
    body = client.get("/metrics").get_data(as_text=True)
    assert count(body) == before + 3
    client.open("/healthz", method="BREW")
    body = client.get("/metrics").get_data(as_text=True)
    assert 'method="BREW"' not in body and 'method="other"' in body


# --- several gunicorn workers -------------------------------------------------------------------


def test_gunicorn_workers_share_metrics_and_log_json(database_url, tmp_path):
    gunicorn = Path(sys.executable).with_name("gunicorn")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RELGOV_")},
        "RELGOV_ENV": "production",
        "RELGOV_SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "RELGOV_DATABASE_URL": database_url,
        "RELGOV_INSTANCE_PATH": str(tmp_path / "instance"),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
    }
    log = (tmp_path / "gunicorn.log").open("wb")
    command = [str(gunicorn), "-c", "python:service.ops.gunicorn_conf", "--workers", "2"]
    server = subprocess.Popen(
        [*command, "--bind", f"127.0.0.1:{port}", "wsgi:app"],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
            time.sleep(0.2)
        ids = []
        for n in range(30):  # a new connection each time: both workers answer some
            answer = httpx.get(f"{base}/healthz", headers={"X-Request-ID": f"multi-{n}"})
            assert answer.status_code == 200
            ids.append(answer.headers["X-Request-ID"])
        assert ids == [f"multi-{n}" for n in range(30)]
        pattern = (
            r'relgov_http_requests_total\{endpoint="ops.healthz",method="GET",status="2xx"\} (\S+)'
        )
        totals = set()
        for _ in range(4):  # whichever worker is scraped sums every worker's samples
            body = httpx.get(f"{base}/metrics").text
            totals.add(float(re.search(pattern, body).group(1)))
        assert len(totals) == 1 and totals.pop() >= 31
        assert len(list(multiproc.glob("gauge_max_*.db"))) == 2  # two workers, one sum
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    lines = [
        json.loads(x)
        for x in (tmp_path / "gunicorn.log").read_text().splitlines()
        if x.startswith("{")
    ]
    served = {r["request_id"] for r in lines if r.get("logger") == "relgov.access"}
    assert {f"multi-{n}" for n in range(30)} <= served
