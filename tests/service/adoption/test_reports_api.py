"""The report endpoints (JSON and CSV), the pages, /metrics and the summaries for others."""

from __future__ import annotations

import csv
import io

import pytest
from sqlmodel import Session

from service.adoption import services
from tests.service.adoption.conftest import World, bearer, make_app

REPORTS = ["series", "census", "stragglers", "offline", "milestones", "stalls"]


def read_csv(response) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


@pytest.mark.parametrize("name", REPORTS)
def test_every_report_as_json_and_csv(client, world: World, read_token, name):
    base = f"/api/v1/apps/pos/adoption/{name}"
    response = client.get(base, headers=bearer(read_token))
    assert response.status_code == 200, response.json
    assert response.json
    by_query = client.get(base + "?format=csv", headers=bearer(read_token))
    by_path = client.get(base + ".csv", headers=bearer(read_token))
    assert by_query.get_data() == by_path.get_data()
    read_csv(by_path)


def test_series_has_every_channel_and_the_release_dates(client, world: World, read_token):
    data = client.get("/api/v1/apps/pos/adoption/series?days=60", headers=bearer(read_token)).json
    assert len(data["days"]) == 60 and data["step"] == "day"
    assert set(data["channels"]) == {"beta", "stable", "all"}
    assert "3.4.0" in data["versions"]
    assert {r["version"] for r in data["releases"]} >= {"3.2.0", "3.3.0", "3.4.0"}
    last = [data["channels"]["all"]["shares"][v][-1] for v in data["versions"]]
    assert sum(last) == pytest.approx(1.0)
    weekly = client.get(
        "/api/v1/apps/pos/adoption/series?days=365", headers=bearer(read_token)
    ).json
    assert weekly["step"] == "week" and len(weekly["days"]) == 53
    assert weekly["days"][-1] == data["days"][-1]


def test_census_counts_online_devices_only(client, world: World, read_token):
    data = client.get("/api/v1/apps/pos/adoption/census", headers=bearer(read_token)).json
    offline = client.get("/api/v1/apps/pos/adoption/offline", headers=bearer(read_token)).json
    assert data["devices"] + data["offline"] + data["gone"] == 90
    assert data["offline"] == offline["offline_24h"]
    assert sum(row["devices"] for row in data["by_version"]) == data["devices"]
    rows = read_csv(client.get("/api/v1/apps/pos/adoption/census.csv", headers=bearer(read_token)))
    assert {row["group"] for row in rows} == {"version", "device_kind", "region"}


def test_stragglers_list_stores_below_the_minimum(client, world: World, read_token):
    data = client.get(
        "/api/v1/apps/pos/adoption/stragglers?max_behind=0", headers=bearer(read_token)
    ).json
    assert data["minimum_supported"] == "3.1.0"
    assert data["stores"], data
    first = data["stores"][0]
    assert {"store_id", "name", "region", "devices", "last_seen", "reasons"} <= set(first)
    rows = read_csv(
        client.get(
            "/api/v1/apps/pos/adoption/stragglers.csv?max_behind=0", headers=bearer(read_token)
        )
    )
    assert rows[0]["store_id"] == first["store_id"]


def test_milestones_per_release_beta_and_overall(client, world: World, read_token):
    data = client.get("/api/v1/apps/pos/adoption/milestones", headers=bearer(read_token)).json
    seen = {(m["version"], m["channel"], m["threshold"]) for m in data["milestones"]}
    assert ("3.1.0", "beta", 0.5) in seen and ("3.1.0", "all", 0.95) in seen
    reached = [m for m in data["milestones"] if m["version"] == "3.1.0" and m["threshold"] == 0.5]
    assert all(m["days"] is not None for m in reached)


def test_unknown_app_is_404_json(client, world: World, read_token):
    response = client.get("/api/v1/apps/nope/adoption/census", headers=bearer(read_token))
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    response = client.get("/api/v1/apps/nope/adoption/census.csv", headers=bearer(read_token))
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("series?days=0", "days"),
        ("series?start=2024-02-01&end=2024-01-01", "start"),
        ("series?start=1000-01-01&end=2024-01-01", "start"),
        ("series.csv?start=2021-01-01", "start"),
        ("series?days=1001", "days"),
        ("stragglers?offset=99999999999999999999", "offset"),
        ("offline?offset=-1", "offset"),
        ("series?format=xml", "format"),
        ("offline?bucket=1h", "bucket"),
        ("stragglers?max_behind=-1", "max_behind"),
        ("census?color=red", "color"),
    ],
)
def test_bad_query_is_422_naming_the_field(client, world: World, read_token, query, field):
    response = client.get(f"/api/v1/apps/pos/adoption/{query}", headers=bearer(read_token))
    assert response.status_code == 422
    assert response.json["error"]["fields"][0]["field"] == field


def test_reports_need_a_token_or_login(client, world: World):
    assert client.get("/api/v1/apps/pos/adoption/census").status_code == 401


def test_beta_release_below_target_is_a_stall(client, world: World, read_token, session: Session):
    # 3.4.0 has been in beta for 36 h, past the app's 24 h; target 80 %.
    data = client.get("/api/v1/apps/pos/adoption/stalls", headers=bearer(read_token)).json
    kinds = {(s["version"], s["kind"]) for s in data["stalls"]}
    summary = services.stall_summary(session)
    beta_share = services.release_adoption(session, world.releases["3.4.0"])
    if beta_share["beta"] is not None and beta_share["beta"] < 0.8:
        assert ("3.4.0", "beta_below_target") in kinds
        assert beta_share["stalled"] is True
        assert any(s["version"] == "3.4.0" and s["release_id"] for s in summary)
        stall = next(s for s in data["stalls"] if s["version"] == "3.4.0")
        assert stall["stores_holding_back"] >= 1
        assert stall["holding_back"][0]["store_id"].startswith("S")


def test_stall_when_nobody_in_beta_has_updated(client, session: Session, read_token):
    from datetime import timedelta

    from tests.service.adoption.conftest import make_fleet, make_release, utcnow_naive
    from version_monitor.adoption import ReleaseInfo
    from version_monitor.simulate import simulate_adoption

    now = utcnow_naive()
    app = make_app(session, "kds", beta_stall_hours=12)
    make_fleet(session, stores=4, beta=2)
    make_release(
        session,
        app,
        "1.0.0",
        state="released",
        beta_at=now - timedelta(days=20),
        rollout_started_at=now - timedelta(days=18),
        released_at=now - timedelta(days=18),
    )
    release = make_release(session, app, "1.1.0", state="beta", beta_at=now - timedelta(hours=13))
    # Nobody has the beta release yet: history has only 1.0.0.
    simulate_adoption(
        session,
        app="kds",
        releases=[ReleaseInfo("1.0.0", now - timedelta(days=20), now - timedelta(days=18))],
        start=now - timedelta(days=10),
        now=now,
        offline_share=0,
        gone_share=0,
        late_joiner_share=0,
    )
    session.commit()
    data = client.get("/api/v1/apps/kds/adoption/stalls", headers=bearer(read_token)).json
    assert [(s["version"], s["kind"]) for s in data["stalls"]] == [("1.1.0", "beta_below_target")]
    assert data["stalls"][0]["stores_holding_back"] == 2
    value, evidence = services.beta_adoption_for_checklist(session, release)
    assert value == 0.0 and "0 of 4 online beta devices" in evidence
    adoption = services.release_adoption(session, release)
    assert adoption["stalled"] and adoption["beta"] == 0.0 and adoption["target"] == 0.8
    metrics = client.get("/metrics").get_data(as_text=True)
    assert (
        'relgov_release_adoption_stalled{app="kds",kind="beta_below_target",version="1.1.0"} 1.0'
        in metrics
    )


def test_checklist_value_is_none_before_beta_data(session: Session):
    from tests.service.adoption.conftest import make_release

    app = make_app(session, "handy")
    release = make_release(session, app, "2.0.0", state="approved")
    assert services.beta_adoption_for_checklist(session, release) == (
        None,
        "not available yet: the release has not entered beta",
    )
    release.beta_at = release.created_at
    value, evidence = services.beta_adoption_for_checklist(session, release)
    assert value is None and evidence.startswith("not available yet")
    assert services.release_adoption(session, release)["available"] is False


def test_adoption_page_renders_everything(admin_client, world: World):
    response = admin_client.get("/adoption", follow_redirects=True)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for text in (
        "Adoption over time",
        'id="chart-all"',
        "Today's census",
        "Stragglers",
        "Time to 50 / 80 / 95 %",
        "Offline devices",
        "3.4.0",
        "stragglers.csv",
    ):
        assert text in html, text
    assert admin_client.get("/adoption/pos?days=365").status_code == 200
    assert admin_client.get("/adoption/pos?days=banana").status_code == 200
    assert admin_client.get("/adoption/nope").status_code == 404


def test_adoption_page_without_apps(admin_client):
    response = admin_client.get("/adoption", follow_redirects=True)
    assert response.status_code == 200
    assert "No app is registered yet" in response.get_data(as_text=True)


def test_adoption_page_of_an_app_without_data(admin_client, session: Session):
    make_app(session, "kds")
    html = admin_client.get("/adoption/kds").get_data(as_text=True)
    assert "No rollups yet" in html and "No device has reported" in html


def test_partials_render(app, world: World, session: Session):
    from flask import render_template

    with app.test_request_context():
        html = render_template(
            "adoption/_release_adoption.html",
            panel=services.release_adoption(session, world.releases["3.3.0"]),
        )
        assert "beta stores" in html and "%" in html
        stalls = [
            {
                "app": "pos",
                "app_name": "POS",
                "version": "3.4.0",
                "release_id": 7,
                "kind": "beta_below_target",
                "detail": "beta adoption 10.0% is below",
                "stores_holding_back": 3,
                "holding_back": [{"store_id": "S001", "name": "R1"}],
            }
        ]
        html = render_template("adoption/_stalls.html", stalls=stalls)
        assert "beta below target" in html and "/releases/7" in html and "S001 R1" in html
