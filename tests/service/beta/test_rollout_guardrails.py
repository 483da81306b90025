"""Guardrails on the rollout: Promote, Advance, Mark released and Halt ask first and say what
will happen; "Mark released" part-way through a staged rollout needs a reason and says how
many stores jump; Promote is not the primary move while a gate fails. Plus the rollout API."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from service import db
from service.beta.stages import reach
from service.models import AuditEvent, utcnow
from service.releases.lifecycle import Actor, transition
from service.releases.models import Release
from tests.builders import csrf_header, login, make_user, post_form

RM = Actor("user:rm@example.com", role="release_manager")


@pytest.fixture
def rm(session):
    return make_user(session, email="rm@example.com", role="release_manager")


@pytest.fixture
def rolling(session, pos, stores) -> Release:
    """3.12.0 promoted: rolling out at the first stage (10 %)."""
    release = session.exec(select(Release).where(Release.version == "3.12.0")).one()
    transition(session, release, "promote", actor=RM)
    session.commit()
    return release


def _left(app, release_id: int) -> tuple[int, int]:
    with app.test_request_context():
        release = db.session().get(Release, release_id)
        (now,) = reach(db.session(), release.stage_percent)
    return now.left, now.total


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_mark_released_mid_rollout_needs_a_reason_and_says_how_many_stores_jump(
    app, client, session, rm, rolling
):
    left, total = _left(app, rolling.id)
    assert left > 0
    login(client, rm.email)
    headers = csrf_header(client)
    url = f"/api/v1/releases/{rolling.id}/transitions"
    refused = client.post(url, json={"action": "complete"}, headers=headers)
    assert refused.status_code == 422
    error = refused.json["error"]
    assert [f["field"] for f in error["fields"]] == ["reason"]
    assert f"{left} store{'s' if left != 1 else ''} of {total}" in error["message"]
    assert "at 10 %" in error["message"]
    session.expire_all()
    assert session.get(Release, rolling.id).state == "rolling_out"

    done = client.post(
        url, json={"action": "complete", "reason": "hotfix for a tax bug"}, headers=headers
    )
    assert done.status_code == 200 and done.json["state"] == "released"
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "release.complete")).one()
    assert event.after["reason"] == "hotfix for a tax bug"


def test_mark_released_on_the_page_confirms_with_the_store_count_and_a_labelled_reason(
    app, client, session, rm, rolling
):
    left, total = _left(app, rolling.id)
    login(client, rm.email)
    page = f"/releases/{rolling.id}"
    html = client.get(page).get_data(as_text=True)
    assert "Reason for “Mark released” (required)" in html
    assert "jump to this release at once" in _text(html)
    # A post without the confirmation (an old form, a replay) shows the step, moves nothing.
    asked = post_form(client, page + "/transition", {"action": "complete"}, page=page)
    assert asked.status_code == 200
    text = _text(asked.get_data(as_text=True))
    assert "Mark released POS register 3.12.0?" in text
    assert f"{left} store{'s' if left != 1 else ''} of {total}" in text
    assert 'name="confirm" value="yes"' in asked.get_data(as_text=True)
    session.expire_all()
    assert session.get(Release, rolling.id).state == "rolling_out"
    # Confirmed without a reason: refused, nothing moves.
    post_form(client, page + "/transition", {"action": "complete", "confirm": "yes"}, page=page)
    session.expire_all()
    assert session.get(Release, rolling.id).state == "rolling_out"
    done = post_form(
        client,
        page + "/transition",
        {"action": "complete", "confirm": "yes", "reason": "all stages verified in beta"},
        page=page,
    )
    assert done.status_code == 302
    session.expire_all()
    assert session.get(Release, rolling.id).state == "released"


@pytest.mark.parametrize("action", ["halt", "promote"])
def test_halt_and_promote_ask_before_they_act(client, session, rm, pos, stores, action):
    release = session.exec(select(Release).where(Release.version == "3.12.0")).one()
    login(client, rm.email)
    page = f"/releases/{release.id}"
    data = {"action": action, "reason": "checking" if action == "halt" else ""}
    asked = post_form(client, page + "/transition", data, page=page)
    assert asked.status_code == 200
    html = asked.get_data(as_text=True)
    assert "This is what will happen" in html and f'data-yes="{action}"' in html
    assert "stores" in _text(html)  # counted from the fleet
    session.expire_all()
    assert session.get(Release, release.id).state == "beta"
    post_form(client, page + "/transition", {**data, "confirm": "yes"}, page=page)
    session.expire_all()
    assert session.get(Release, release.id).state == (
        "halted" if action == "halt" else "rolling_out"
    )


def test_advance_asks_first_and_says_how_many_stores_it_adds(app, client, session, rm, rolling):
    login(client, rm.email)
    page = f"/releases/{rolling.id}"
    html = client.get(page).get_data(as_text=True)
    assert "Advance to 50 %…" in html and "more (" in html
    url = f"/fleet/releases/{rolling.id}/advance-stage"
    asked = post_form(client, url, {"stage_percent": "10"}, page=page)
    assert asked.status_code == 200
    assert "Advance POS register 3.12.0 to 50 %?" in _text(asked.get_data(as_text=True))
    session.expire_all()
    assert session.get(Release, rolling.id).stage_percent == 10
    done = post_form(client, url, {"stage_percent": "10", "confirm": "yes"}, page=page)
    assert done.status_code == 302
    session.expire_all()
    assert session.get(Release, rolling.id).stage_percent == 50


def test_promote_is_not_primary_while_a_gate_fails_and_the_reason_comes_first(
    client, session, rm, pos, stores
):
    release = session.exec(select(Release).where(Release.version == "3.12.0")).one()
    release.beta_at = utcnow()  # the soak has just begun: 0 of 2 business days
    session.add(release)
    session.commit()
    login(client, rm.email)
    html = client.get(f"/releases/{release.id}").get_data(as_text=True)
    failing = html.index("Promotion gate failing:")
    promote = html.index('data-action="promote"')
    assert failing < promote
    summary = html[promote : html.index("</summary>", promote)]
    assert 'class="small secondary"' in summary
    assert "Beta soak — 0 of 2 business days" in _text(html)


def test_the_rollout_api_reads_and_advances_for_a_release_manager(
    client, session, admin, rm, rolling
):
    login(client, rm.email)
    headers = csrf_header(client)
    seen = client.get(f"/api/v1/releases/{rolling.id}/rollout")
    assert seen.status_code == 200
    assert seen.json["stage_percent"] == 10 and seen.json["next_stage"] == 50
    url = f"/api/v1/releases/{rolling.id}/rollout/advance"
    moved = client.post(url, json={"stage_percent": 10}, headers=headers)
    assert moved.status_code == 200 and moved.json["stage_percent"] == 50
    stale = client.post(url, json={"stage_percent": 10}, headers=headers)
    assert stale.status_code == 409
    assert (
        session.exec(select(AuditEvent).where(AuditEvent.action == "release.advance_stage"))
        .one()
        .actor
        == "user:rm@example.com"
    )
