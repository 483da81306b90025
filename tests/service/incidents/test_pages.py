"""Incident pages: list, record (with form errors), detail, resolve, halt, trend, release panel,
gate override and gate settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from service.incidents import services
from service.incidents.models import GateOverride, Incident
from service.models import AuditEvent, utcnow
from tests.builders import login, make_user, post_form
from tests.service.incidents.conftest import record


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


@pytest.fixture
def rm_client(client, session):
    make_user(session, email="rm@example.com", role="release_manager", name="Ren")
    assert login(client, "rm@example.com").status_code == 302
    return client


def form(**fields: str) -> dict[str, str]:
    data = {
        "app": "pos",
        "title": "Kitchen tickets print twice",
        "impact": "5",
        "stores": "S0001\nS0003",
        "started_at": stamp(utcnow() - timedelta(hours=1)),
        "release": "",
    }
    data.update(fields)
    return data


def test_record_from_the_form(rm_client, world, session) -> None:
    response = post_form(rm_client, "/incidents/new", form())
    assert response.status_code == 302, response.get_data(as_text=True)
    incident = session.exec(select(Incident)).one()
    assert incident.score == 5 and incident.store_count == 2 and incident.beta_store_count == 1
    page = rm_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Score 5 = impact 5 × scope 1" in page
    assert "6 stores with a device seen in the 24 h before the start" in page
    assert "Halt pos" in page  # the release suggested is in beta


def test_form_picks_beta_stores_and_imports_a_csv(rm_client, world, session) -> None:
    import io

    token_page = "/incidents/new"
    from tests.builders import csrf_token

    data = form(stores="")
    data["csrf_token"] = csrf_token(rm_client, token_page)
    response = rm_client.post(
        token_page,
        data={
            **data,
            "beta_pick": ["S0001", "S0002"],
            "stores_file": (io.BytesIO(b"store_id,name\nS0004,Four\n"), "stores.csv"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    incident = session.exec(select(Incident)).one()
    assert (incident.store_count, incident.beta_store_count) == (3, 2)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"app": ""}, "choose an app"),
        ({"impact": ""}, "choose the impact"),
        ({"title": ""}, "give the incident a title"),
        ({"stores": "S0001, S9999"}, "unknown store: S9999"),
        ({"stores": ""}, "list the affected stores or give their number"),
        ({"started_at": "soon"}, "not a date and time"),
        ({"store_count": "x", "stores": ""}, "a whole number"),
    ],
)
def test_form_errors(rm_client, world, session, fields, message) -> None:
    response = post_form(rm_client, "/incidents/new", form(**fields))
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert session.exec(select(Incident)).first() is None


def test_viewer_cannot_record(client, session, world) -> None:
    make_user(session, email="v@example.com", role="viewer")
    login(client, "v@example.com")
    assert client.get("/incidents/new").status_code == 403
    assert client.get("/incidents").status_code == 200


def test_resolve_and_halt_from_the_incident(rm_client, world, session) -> None:
    incident = record(session, world, title="Payments time out", impact=3)
    url = f"/incidents/{incident.id}"
    asked = post_form(rm_client, f"{url}/halt", {}, page=url)  # not confirmed: nothing moves
    assert asked.status_code == 302 and asked.headers["Location"].endswith(f"{url}?halt=1")
    session.refresh(world.beta)
    assert world.beta.state == "beta"
    step = rm_client.get(asked.headers["Location"]).get_data(as_text=True)
    assert '<details class="halt-step" data-action="halt" open>' in step
    assert "stores it reached are offered the previous release again" in step
    response = post_form(rm_client, f"{url}/halt", {"confirm": "yes"}, page=url)
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/releases/{world.beta.id}")
    session.refresh(world.beta)
    assert world.beta.state == "halted"
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "release.halt")).one()
    assert f"incident #{incident.id}: Payments time out" in event.summary
    response = post_form(
        rm_client,
        f"{url}/resolve",
        {"resolved_at": "", "postmortem_url": "https://notion.example.com/pm"},
        page=url,
    )
    assert response.status_code == 302
    session.refresh(incident)
    assert incident.resolved_at is not None
    assert incident.postmortem_url == "https://notion.example.com/pm"
    bad = post_form(rm_client, f"{url}/update", {"postmortem_url": "ftp://x"}, page=url)
    assert bad.status_code == 302
    assert "must start with http" in rm_client.get(url).get_data(as_text=True)


def test_trend_page_and_list(rm_client, world, session) -> None:
    for days in (0, 8, 30):
        record(
            session,
            world,
            title=f"Problem {days}",
            impact=1,
            stores=["S0003"],
            ago=timedelta(days=days, hours=1),
            release=world.old,
        )
    page = rm_client.get("/incidents/trend/pos").get_data(as_text=True)
    assert "trend-chart" in page and "chart-4.5.1.umd.min.js" in page
    assert page.count('class="week"') == 3
    assert "Problem 30" in page
    assert rm_client.get("/incidents/trend/nope").status_code == 404
    assert rm_client.get("/incidents/trend").status_code == 302
    listing = rm_client.get("/incidents?app=pos").get_data(as_text=True)
    assert "Problem 8" in listing


def test_release_panel_override_and_settings(admin_client, world, session) -> None:
    world.app.incident_score_threshold = 5
    session.add(world.app)
    incident = record(session, world, title="Tickets print twice", impact=5)
    url = f"/releases/{world.beta.id}"
    page = admin_client.get(url).get_data(as_text=True)
    assert "Promotion gates" in page and "advisory" in page
    assert f"#{incident.id}" in page and "In beta stores" in page
    assert 'name="gate" value="incident_score"' in page

    def override(gate, reason):
        form = {"gate": gate, "reason": reason}
        return post_form(admin_client, f"{url}/gates/override", form, page=url)

    def save_settings(**form):
        trend = "/incidents/trend/pos"
        return post_form(admin_client, "/incidents/settings/pos", form, page=trend)

    assert override("incident_score", "hotfix config pushed").status_code == 302
    assert session.exec(select(GateOverride)).one().reason == "hotfix config pushed"
    page = admin_client.get(url).get_data(as_text=True)
    assert "hotfix config pushed" in page and "overridden" in page
    assert override("beta_soak", "").status_code == 302
    assert len(session.exec(select(GateOverride)).all()) == 1

    assert save_settings(holiday_calendar="us", promotion_gates="on").status_code == 302
    session.refresh(world.app)
    assert (world.app.holiday_calendar, world.app.promotion_gates) == ("US", True)
    save_settings(holiday_calendar="Narnia")
    session.refresh(world.app)
    assert world.app.holiday_calendar == "US"


def test_demo_seeds_incidents(app, session) -> None:
    from service.demo import seed_demo

    report = "\n".join(seed_demo(app))
    assert "incidents:" in report
    incidents = session.exec(select(Incident)).all()
    assert len(incidents) >= 5
    open_beta = [i for i in incidents if i.beta_store_count and i.resolved_at is None]
    assert open_beta
    from service.releases.models import App, Release

    pos = session.exec(select(App).where(App.slug == "pos")).one()
    assert pos.promotion_gates
    release = session.get(Release, open_beta[0].release_id)
    gate = next(g for g in services.evaluate_gates(session, release) if g.key == "incident_score")
    assert gate.status == "failed"


def test_the_form_reads_times_in_the_apps_train_zone(rm_client, world, session) -> None:
    """POS trains run on Tokyo time, and so do its incident forms: 10:00 typed is 01:00 UTC,
    shown back as 10:00 JST with the UTC time on hover."""
    from zoneinfo import ZoneInfo

    import utc

    typed = (utcnow() - timedelta(days=1)).astimezone(ZoneInfo("Asia/Tokyo"))
    typed = typed.replace(hour=10, minute=0, second=0, microsecond=0)
    response = post_form(
        rm_client, "/incidents/new", form(started_at=typed.strftime("%Y-%m-%d %H:%M"))
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    incident = session.exec(select(Incident)).one()
    assert utc.aware(incident.started_at) == typed.astimezone(UTC)
    page = rm_client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"{typed:%Y-%m-%d} 10:00 JST</time>" in page
    assert f'title="{typed.astimezone(UTC):%Y-%m-%d} 01:00:00 UTC"' in page
    new = rm_client.get("/incidents/new").get_data(as_text=True)
    assert 'type="datetime-local"' not in new and 'placeholder="YYYY-MM-DD HH:MM"' in new
