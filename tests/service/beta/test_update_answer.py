"""The update answer through the API: cohort, stage, freeze, halt, mandatory, caching."""

from __future__ import annotations

import pytest

from service.beta.models import FleetVersion
from tests.builders import add_release

URL = "/api/v1/apps/pos/update"


def ask(client, headers, store="S0002", version="3.11.0", app="pos", **extra):
    params = {"store_id": store, "current_version": version, **extra}
    return client.get(f"/api/v1/apps/{app}/update", query_string=params, headers=headers)


def test_beta_store_is_offered_the_beta(client, device, pos, stores):
    response = ask(client, device, store="S0001")
    assert response.status_code == 200, response.json
    body = response.json
    assert body["target_version"] == "3.12.0"
    assert body["channel"] == "beta"
    assert body["reason"] == "cohort"
    assert body["action"] == "install"
    assert body["mandatory"] is False
    assert body["in_beta_cohort"] is True
    assert set(body["install_window"]) >= {"starts_at", "ends_at", "timezone"}
    assert body["install_window"]["local_start"] == "02:00"


def test_other_store_stays_on_stable(client, device, pos, stores):
    body = ask(client, device, store="S0002").json
    assert (body["target_version"], body["channel"], body["reason"]) == (
        "3.11.0",
        "stable",
        "stable",
    )
    assert body["action"] == "none"


def test_frozen_store_gets_no_new_version(client, device, pos, stores, session):
    from beta import store as fleet
    from service.models import utcnow

    fleet.enrol_store(
        session=session, store=stores["S0003"], reason="try it", actor="test", now=utcnow()
    )
    session.commit()
    body = ask(client, device, store="S0003", version="3.11.0").json
    assert body["reason"] == "freeze"
    assert body["target_version"] == "3.11.0"
    assert body["action"] == "none"
    assert body["frozen_until"] is not None
    assert "New Year's Eve rush" in body["message"]


def test_halted_release_sends_devices_back(client, device, pos, stores, session):
    from sqlmodel import select

    from service.releases.models import Release

    beta = session.exec(select(Release).where(Release.version == "3.12.0")).one()
    beta.state, beta.halted_from = "halted", "beta"
    session.add(beta)
    session.commit()
    body = ask(client, device, store="S0001", version="3.12.0").json
    assert body["reason"] == "halt"
    assert body["target_version"] == "3.11.0"
    assert body["action"] == "rollback"
    body = ask(client, device, store="S0001", version="3.11.0").json
    assert body["reason"] == "halt" and body["target_version"] == "3.11.0"


def test_rolling_out_stage_reaches_non_beta_stores(client, device, pos, stores, session):
    add_release(session, pos, "3.13.0", "rolling_out", stage_percent=100)
    body = ask(client, device, store="S0002").json
    assert (body["target_version"], body["reason"], body["channel"]) == (
        "3.13.0",
        "stage",
        "stable",
    )


def test_mandatory_below_minimum_even_when_frozen(client, device, pos, stores):
    body = ask(client, device, store="S0003", version="2.9.0").json
    assert body["mandatory"] is True
    assert body["target_version"] == "3.11.0"
    body = ask(client, device, store="S0002", version="3.0.0").json
    assert body["mandatory"] is False


def test_enrolment_changes_the_next_answer(client, device, writer, pos, stores, app):
    assert ask(client, device, store="S0002").json["target_version"] == "3.11.0"
    builds = app.extensions["relgov.fleet_answers"].builds
    assert ask(client, device, store="S0002").json["target_version"] == "3.11.0"
    assert app.extensions["relgov.fleet_answers"].builds == builds  # warm: no rebuild
    response = client.post(
        "/api/v1/stores/S0002/cohort", json={"action": "enrol", "reason": "pilot"}, headers=writer
    )
    assert response.status_code == 200, response.json
    body = ask(client, device, store="S0002").json
    assert (body["target_version"], body["reason"]) == ("3.12.0", "cohort")


def test_counter_moves_with_release_changes(client, device, pos, stores, session):
    before = session.get(FleetVersion, 1).version
    add_release(session, pos, "3.14.0", "draft")  # a draft does not matter to devices
    session.expire_all()
    assert session.get(FleetVersion, 1).version == before
    pos.min_supported_version = "3.11.0"
    session.add(pos)
    session.commit()
    session.expire_all()
    assert session.get(FleetVersion, 1).version == before + 1
    assert ask(client, device, store="S0002", version="3.10.0").json["mandatory"] is True


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"store": "S9999"}, 404, "store_id"),
        ({"app": "nope"}, 404, "app"),
        ({"version": "not-a-version"}, 422, "current_version"),
        ({"version": ""}, 422, "current_version"),
    ],
)
def test_bad_input(client, device, pos, stores, params, status, field):
    response = ask(client, device, **params)
    assert response.status_code == status
    assert response.json["error"]["fields"][0]["field"] == field


def test_device_of_another_store_is_a_conflict(client, device, pos, stores):
    response = ask(client, device, store="S0002", device_id="S0001-pos-1")
    assert response.status_code == 409
    assert response.json["error"]["fields"][0]["field"] == "device_id"


def test_scopes(client, reader, writer, session, admin, pos, stores):
    from tests.builders import make_token

    assert ask(client, reader).status_code == 200
    assert client.get(URL, query_string={"store_id": "S0001"}).status_code == 401
    incidents = make_token(session, creator=admin, scopes=["incidents:write"], name="x")
    response = ask(client, {"Authorization": f"Bearer {incidents}"})
    assert response.status_code == 403
    assert "heartbeats:write" in response.json["error"]["message"]


def test_revoked_and_expired_device_tokens_are_refused(client, session, admin, pos, stores):
    from datetime import timedelta

    from service.auth import issue_token, revoke_token
    from service.models import utcnow

    token, raw = issue_token(
        session=session, name="old", scopes=["heartbeats:write"], creator=admin
    )
    revoke_token(session=session, token=token, actor=admin)
    session.commit()
    response = ask(client, {"Authorization": f"Bearer {raw}"})
    assert response.status_code == 401 and "revoked" in response.json["error"]["message"]
    token, raw = issue_token(
        session=session, name="exp", scopes=["heartbeats:write"], creator=admin
    )
    token.expires_at = utcnow() - timedelta(minutes=1)
    session.add(token)
    session.commit()
    response = ask(client, {"Authorization": f"Bearer {raw}"})
    assert response.status_code == 401 and "expired" in response.json["error"]["message"]
    assert ask(client, {"Authorization": "Bearer rg_unknown"}).status_code == 401


def test_device_token_use_is_recorded(client, session, admin, pos, stores):
    from service.auth import issue_token
    from service.models import ApiToken

    token, raw = issue_token(
        session=session, name="dev", scopes=["heartbeats:write"], creator=admin
    )
    session.commit()
    assert ask(client, {"Authorization": f"Bearer {raw}"}).status_code == 200
    session.expire_all()
    assert session.get(ApiToken, token.id).last_used_at is not None
