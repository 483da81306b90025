"""Promotion gates: the promote guard, admin overrides, checklist items, halt from an incident."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from service.incidents import services
from service.models import AuditEvent, utcnow
from service.releases import checklist
from service.releases.lifecycle import Actor, TransitionError, transition
from service.releases.models import ReleaseItem
from tests.service.incidents.conftest import record

ADMIN = Actor(name="user:admin@example.com", user_id=None, role="admin")
RM = Actor(name="user:rm@example.com", user_id=None, role="release_manager")


@pytest.fixture
def gated(session, world):
    world.app.promotion_gates = True
    world.app.incident_score_threshold = 5
    session.add(world.app)
    session.commit()
    return world


def beta_incident(session, world, *, impact: int = 5, stores=("S0001",), **extra):
    return record(session, world, impact=impact, stores=stores, ago=timedelta(hours=2), **extra)


def test_all_gates_pass_and_promotion_goes_ahead(session, gated) -> None:
    gates = services.evaluate_gates(session, gated.beta)
    assert [(g.key, g.status) for g in gates] == [
        ("beta_soak", "passed"),
        ("beta_adoption", "passed"),
        ("incident_score", "passed"),
    ]
    transition(session, gated.beta, "promote", actor=RM)
    assert gated.beta.state == "rolling_out"


def test_a_beta_incident_blocks_until_resolved(session, gated) -> None:
    incident = beta_incident(session, gated)
    assert incident.score == 5 and incident.beta_store_count == 1
    with pytest.raises(TransitionError) as refused:
        transition(session, gated.beta, "promote", actor=RM)
    assert refused.value.status == 409
    assert f"#{incident.id} (score 5)" in refused.value.message
    assert "Beta incidents" in refused.value.message
    session.rollback()
    services.update_incident(session, incident, actor="test", changes={"resolved_at": utcnow()})
    session.commit()
    transition(session, gated.beta, "promote", actor=RM)
    assert gated.beta.state == "rolling_out"


def test_incidents_below_threshold_or_elsewhere_do_not_block(session, gated) -> None:
    beta_incident(session, gated, impact=3)  # score 3 < 5
    beta_incident(session, gated, stores=("S0003",))  # score 5 but not at a beta store
    gate = next(
        g for g in services.evaluate_gates(session, gated.beta) if g.key == "incident_score"
    )
    assert gate.status == "passed"
    assert "2 other beta incident" not in gate.evidence  # only beta-store incidents count
    assert "1 other beta incident(s)" in gate.evidence


def test_an_admin_override_lets_the_gate_pass_and_is_highlighted(session, gated) -> None:
    incident = beta_incident(session, gated)
    services.override_gate(
        session, release=gated.beta, gate="incident_score", reason="fixed by config", actor=ADMIN
    )
    session.commit()
    gate = next(
        g for g in services.evaluate_gates(session, gated.beta) if g.key == "incident_score"
    )
    assert gate.status == "failed" and gate.ok and gate.override is not None
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "gate.override")).one()
    assert event.highlight and event.subject_id == str(gated.beta.id)
    assert "fixed by config" in event.summary
    transition(session, gated.beta, "promote", actor=RM)
    assert gated.beta.state == "rolling_out"
    assert incident.resolved_at is None


@pytest.mark.parametrize(
    ("actor", "gate", "reason", "status", "field"),
    [
        (RM, "incident_score", "why", 403, None),
        (ADMIN, "nope", "why", 422, "gate"),
        (ADMIN, "beta_soak", "  ", 422, "reason"),
    ],
)
def test_override_is_refused(session, gated, actor, gate, reason, status, field) -> None:
    with pytest.raises(services.IncidentError) as refused:
        services.override_gate(session, release=gated.beta, gate=gate, reason=reason, actor=actor)
    assert (refused.value.status, refused.value.field) == (status, field)


def test_soak_and_adoption_block_a_fresh_beta(session, gated) -> None:
    gated.beta.beta_at = utcnow()
    gated.app.beta_adoption_target = 100.0
    session.add(gated.beta)
    session.commit()
    from tests.service.incidents.conftest import heartbeat

    heartbeat(
        session, "S0002", "3.11.0", utcnow() - timedelta(minutes=1)
    )  # 1 of 2 beta devices on 3.12.0
    with pytest.raises(TransitionError) as refused:
        transition(session, gated.beta, "promote", actor=RM)
    message = refused.value.message
    assert "2 promotion gates not met" in message
    assert "Beta soak: 0 of 2 business days" in message
    assert "Beta adoption: 50.0 %" in message


def test_gates_are_advisory_when_switched_off(session, world) -> None:
    beta_incident(session, world, impact=5)
    world.app.incident_score_threshold = 5
    world.beta.beta_at = utcnow()
    session.add(world.beta)
    session.commit()
    transition(session, world.beta, "promote", actor=RM)
    assert world.beta.state == "rolling_out"


def test_checklist_items_show_the_gates_and_honor_overrides(session, gated) -> None:
    for position, rule in enumerate(("beta_soak", "beta_adoption", "incident_score")):
        session.add(
            ReleaseItem(
                release_id=gated.beta.id,
                position=position,
                title=rule,
                owner_role="release_manager",
                mode="automatic",
                rule=rule,
                required=False,
            )
        )
    session.commit()
    incident = beta_incident(session, gated)
    statuses = {s.item.rule: s for s in checklist.item_statuses(session, gated.beta)}
    assert statuses["beta_soak"].status == "passed"
    assert "business days since beta started" in statuses["beta_soak"].evidence
    assert statuses["beta_adoption"].status == "passed"
    assert statuses["incident_score"].status == "failed"
    assert f"#{incident.id} (score 5)" in statuses["incident_score"].evidence
    services.override_gate(
        session, release=gated.beta, gate="incident_score", reason="accepted risk", actor=ADMIN
    )
    session.commit()
    status = next(
        s for s in checklist.item_statuses(session, gated.beta) if s.item.rule == "incident_score"
    )
    assert status.status == "passed" and status.evidence.startswith("OVERRIDDEN by user:admin")


def test_soak_evidence_names_the_holiday(session, gated) -> None:
    from datetime import UTC, datetime

    gated.beta.beta_at = datetime(2025, 1, 10, 3, 0, tzinfo=UTC)  # Friday noon in Tokyo
    gate = services.soak_gate(gated.beta, gated.app, datetime(2025, 1, 14, 3, 0, tzinfo=UTC))
    assert gate.status == "failed"
    assert gate.evidence.startswith("1 of 2 business days since beta started on 2025-01-10")
    assert "complete on 2025-01-15" in gate.evidence
    assert "2025-01-13 not counted: Coming of Age Day" in gate.details
    gated.app.holiday_calendar = "none"
    gate = services.soak_gate(gated.beta, gated.app, datetime(2025, 1, 14, 3, 0, tzinfo=UTC))
    assert gate.status == "passed"
    session.rollback()


def test_gates_api(client, gated, session, reader) -> None:
    beta_incident(session, gated)
    data = client.get(f"/api/v1/releases/{gated.beta.id}/gates", headers=reader).json
    assert data["enforced"] is True
    assert [(g["gate"], g["ok"]) for g in data["gates"]] == [
        ("beta_soak", True),
        ("beta_adoption", True),
        ("incident_score", False),
    ]
    assert client.get("/api/v1/releases/999/gates", headers=reader).status_code == 404
