"""Search through the API, the pages (the header's box, the results, the store-facing
changes) and ``relgov search``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlmodel import Session, select

from service.incidents import services as incidents
from service.models import AuditEvent, User
from service.releases.models import App, Release
from tests.builders import PASSWORD, login
from tests.service.search.conftest import register


def _field(response: object) -> list[str]:
    body = response.get_json()  # type: ignore[attr-defined]
    return [f["field"] for f in body["error"]["fields"]]


def test_api_search(
    client: FlaskClient, releases: dict[str, Release], reader: dict[str, str]
) -> None:
    response = client.get("/api/v1/search", query_string={"q": "割り勘"}, headers=reader)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["total"], body["terms"], body["ignored"]) == (2, ["割り勘"], [])
    first = body["results"][0]
    assert first["kind"] == "store" and first["app"] == "pos" and first["version"] == "1.1.0"
    assert first["date"] == "2026-03-04" and first["release_state"] == "released"
    assert first["section"] == "For stores · Payments"
    assert first["title_html"] == "<mark>割り勘</mark>の端数が正しく配分されるようになりました。"
    assert first["url"].startswith(f"/releases/{releases['1.1.0'].id}/notes#:~:text=")
    fix = body["results"][1]
    assert fix["kind"] == "fix"
    assert fix["title_html"] == "<mark>割り勘</mark>の端数処理を修正"
    assert fix["snippet_html"] == "最後の一人に端数が寄っていたため、均等に配分します。"
    page = client.get(
        "/api/v1/search",
        query_string={"q": "split", "kind": "feature,store", "limit": 1, "offset": 1},
        headers=reader,
    ).get_json()
    assert page["total"] == 2 and len(page["results"]) == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "q"),
        ({"q": "a"}, "q"),
        ({"q": "x" * 201}, "q"),
        ({"q": "split", "app": "nope"}, "app"),
        ({"q": "split", "kind": "bugs"}, "kind"),
        ({"q": "split", "since": "March"}, "since"),
        ({"q": "split", "since": "2026-03-02", "until": "2026-03-01"}, "until"),
        ({"q": "split", "limit": "0"}, "limit"),
    ],
)
def test_api_refusals_name_the_field(
    client: FlaskClient, pos: App, reader: dict[str, str], params: dict[str, str], field: str
) -> None:
    response = client.get("/api/v1/search", query_string=params, headers=reader)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert field in _field(response)


def test_api_needs_a_reader(client: FlaskClient, pos: App) -> None:
    assert client.get("/api/v1/search?q=split").status_code == 401


def test_api_store_changes(
    client: FlaskClient,
    app: Flask,
    session: Session,
    pos: App,
    team: dict[str, User],
    reader: dict[str, str],
) -> None:
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        register(app, session, pos, team["engineer"], version, state="released")
    body = client.get(
        "/api/v1/apps/pos/store-changes",
        query_string={"from_version": "1.1", "to_version": "1.2.0"},
        headers=reader,
    ).get_json()
    assert [r["version"] for r in body["releases"]] == ["1.1.0", "1.2.0"]
    assert [n["text"] for n in body["releases"][1]["notes"]] == [
        "会計画面で 8% と 10% の内訳が見られます。"
    ]
    assert body["releases"][1]["notes"][0]["section"] == "For stores · Payments"
    assert body["releases"][1]["url"] == f"/releases/{body['releases'][1]['release_id']}/notes"
    missing = client.get("/api/v1/apps/nope/store-changes", headers=reader)
    assert missing.status_code == 404
    bad = client.get(
        "/api/v1/apps/pos/store-changes", query_string={"from_version": "next"}, headers=reader
    )
    assert bad.status_code == 422 and _field(bad) == ["from_version"]


def test_permission_is_checked_before_the_query(client: FlaskClient) -> None:
    """A caller without credentials learns nothing about the parameters: 401, not 422."""
    for path, query in (
        ("/api/v1/search", {"q": "", "kind": "nope", "limit": "0"}),
        ("/api/v1/apps/pos/store-changes", {"from_version": "next"}),
    ):
        response = client.get(path, query_string=query)
        assert response.status_code == 401, (path, response.get_data(as_text=True))


def test_openapi_documents_search(client: FlaskClient) -> None:
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    search = next(v for k, v in paths.items() if k.endswith("/search"))
    names = {p["name"] for p in search["get"]["parameters"]}
    assert {"q", "app", "kind", "since", "until", "limit", "offset"} <= names
    assert any(k.endswith("/apps/{slug}/store-changes") for k in paths)


def test_every_page_has_the_search_box(
    client: FlaskClient, team: dict[str, User], releases: dict[str, Release]
) -> None:
    login(client, "viewer@example.com", PASSWORD)
    html = client.get("/").get_data(as_text=True)
    assert 'role="search"' in html and 'action="/search"' in html
    html = client.get(f"/releases/{releases['1.1.0'].id}").get_data(as_text=True)
    assert 'action="/search"' in html


def test_results_page(
    client: FlaskClient,
    app: Flask,
    session: Session,
    pos: App,
    team: dict[str, User],
    releases: dict[str, Release],
) -> None:
    with app.app_context():
        incidents.record_incident(
            session,
            app=pos,
            title="<script>alert(1)</script> 割り勘が止まる",
            impact=3,
            store_count=1,
            started_at=datetime(2026, 3, 20, tzinfo=UTC),
            actor="test",
            thresholds=incidents.scope_thresholds(),
        )
        session.commit()
    login(client, "support@example.com", PASSWORD)
    response = client.get("/search", query_string={"q": "割り勘"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<strong>3</strong> results" in html
    assert "<mark>割り勘</mark>の端数が正しく配分されるようになりました。" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; <mark>割り勘</mark>が止まる" in html
    assert "<script>alert(1)" not in html
    assert f'href="/releases/{releases["1.1.0"].id}"' in html  # the version links the release
    empty = client.get("/search").get_data(as_text=True)
    assert "Search every release" in empty


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": "a"}, "too short to search for"),
        ({"q": "split", "app": "nope"}, "no app &#39;nope&#39;"),
        ({"q": "split", "kind": "bugs"}, "unknown kind"),
        ({"q": "split", "since": "soon"}, "not a date"),
        ({"q": "split", "since": "2026-03-02", "until": "2026-03-01"}, "before its start"),
    ],
)
def test_results_page_says_what_is_wrong(
    client: FlaskClient, team: dict[str, User], pos: App, params: dict[str, str], message: str
) -> None:
    login(client, "viewer@example.com", PASSWORD)
    response = client.get("/search", query_string=params)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'class="field-error"' in html and message in html


def test_store_changes_page(
    client: FlaskClient, app: Flask, session: Session, pos: App, team: dict[str, User]
) -> None:
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        register(app, session, pos, team["engineer"], version, state="released")
    login(client, "support@example.com", PASSWORD)
    html = client.get(
        "/search/stores", query_string={"app": "pos", "from_version": "1.1.0"}
    ).get_data(as_text=True)
    assert html.index(">1.1.0</a>") < html.index(">1.2.0</a>")
    assert ">1.0.0</a>" not in html
    assert "Tap Split on the bill screen" in html and "会計画面で 8% と 10%" in html
    bad = client.get("/search/stores", query_string={"app": "pos", "to_version": "x.y"})
    assert bad.status_code == 422 and "not a version" in bad.get_data(as_text=True)


def test_cli_search_reindex_and_stores(
    runner: FlaskCliRunner, session: Session, releases: dict[str, Release]
) -> None:
    found = runner.invoke(args=["search", "割り勘", "--kind", "store"])
    assert found.exit_code == 0, found.output
    assert "1 results, the best 1:" in found.output
    assert "pos 1.1.0 · 2026-03-04 · For stores · Payments" in found.output
    assert "[割り勘]の端数が正しく配分されるようになりました。" in found.output
    assert f"http://127.0.0.1:5000/releases/{releases['1.1.0'].id}/notes#:~:text=" in found.output
    as_json = runner.invoke(args=["search", "find", "split", "--json", "--limit", "1"])
    assert json.loads(as_json.output)["results"][0]["kind"] == "store"
    refused = runner.invoke(args=["search", "split", "--app", "nope"])
    assert refused.exit_code == 2 and "app: no app 'nope'" in refused.output
    rebuilt = runner.invoke(args=["search", "reindex"])
    assert rebuilt.exit_code == 0 and "search index rebuilt" in rebuilt.output
    assert "release" in rebuilt.output
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "search.reindex")).one()
    assert event.actor.startswith("cli") and event.after["owners"]["release"] == 2
    stores = runner.invoke(args=["search", "stores", "--app", "pos", "--from", "1.2"])
    assert stores.exit_code == 0, stores.output
    assert stores.output.startswith("1.2.0  (released, 2026-03-11)")
    assert "会計画面で 8% と 10% の内訳が見られます。" in stores.output


def test_demo_indexes_what_it_seeds(
    app: Flask, session: Session, runner: FlaskCliRunner, search: object
) -> None:
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert "search:" in result.output and "documents indexed" in result.output
    found = search("split bill")  # type: ignore[operator]
    kinds = {h.doc.kind for h in found.hits}
    assert {"store", "feature", "incident"} <= kinds
    assert search("receipt").total > 0  # type: ignore[operator]
    minutes = search("FAQ draft", kind="minutes")  # type: ignore[operator]
    assert minutes.total > 0 and minutes.hits[0].url.startswith("/meetings/")
