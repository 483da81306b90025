"""Every legal and illegal transition of the release state machine."""

import pytest
from sqlmodel import select

from service.models import AuditEvent
from service.releases.lifecycle import (
    NEEDS_REASON,
    TRANSITIONS,
    Actor,
    TransitionError,
    reason_needed,
    transition,
)
from service.releases.models import STATES, App, Release

ADMIN = Actor(name="user:root@example.com", user_id=None, role="admin")

# (from, action) -> to, for every legal move; resume returns where it halted from.
LEGAL = {
    ("draft", "submit"): "in_review",
    ("draft", "cancel"): "cancelled",
    ("in_review", "approve"): "approved",
    ("in_review", "reject"): "rejected",
    ("in_review", "cancel"): "cancelled",
    ("approved", "reject"): "rejected",
    ("approved", "start_beta"): "beta",
    ("approved", "cancel"): "cancelled",
    ("rejected", "reopen"): "draft",
    ("rejected", "cancel"): "cancelled",
    ("beta", "promote"): "rolling_out",
    ("beta", "halt"): "halted",
    ("rolling_out", "complete"): "released",
    ("rolling_out", "halt"): "halted",
    ("halted", "resume"): "<halted_from>",
    ("halted", "cancel"): "cancelled",
}
ALL = [(state, action) for state in STATES for action in TRANSITIONS]


@pytest.fixture
def release(session):
    app = App(slug="kds", name="KDS")
    session.add(app)
    session.commit()
    release = Release(app_id=app.id, version="1.0.0", git_ref="v1.0.0", created_by="user:ci")
    session.add(release)
    session.commit()
    return release


def test_the_table_covers_the_machine():
    legal = {(s, a) for a, (sources, _) in TRANSITIONS.items() for s in sources}
    assert legal == set(LEGAL)


@pytest.mark.parametrize(("state", "action"), ALL)
def test_transition(session, release, state, action):
    release.state = state
    release.halted_from = "rolling_out" if state == "halted" else None
    session.add(release)
    session.commit()
    reason = "because" if reason_needed(release, action) else ""
    if (state, action) not in LEGAL:
        with pytest.raises(TransitionError) as info:
            transition(session, release, action, actor=ADMIN, reason=reason)
        assert info.value.status == 409
        assert f"a release that is {state.replace('_', ' ')}" in info.value.message
        session.rollback()
        assert session.exec(select(AuditEvent)).all() == []
        return
    transition(session, release, action, actor=ADMIN, reason=reason)
    session.commit()
    expected = LEGAL[(state, action)]
    assert release.state == ("rolling_out" if expected == "<halted_from>" else expected)
    event = session.exec(select(AuditEvent).where(AuditEvent.action == f"release.{action}")).one()
    assert event.actor == ADMIN.name
    assert event.before == {"state": state}


@pytest.mark.parametrize("action", sorted(NEEDS_REASON))
def test_actions_that_need_a_reason(session, release, action):
    sources, _ = TRANSITIONS[action]
    release.state = sorted(sources)[0]
    session.add(release)
    session.commit()
    with pytest.raises(TransitionError) as info:
        transition(session, release, action, actor=ADMIN, reason="  ")
    assert info.value.status == 422 and info.value.field == "reason"


def test_halt_and_resume_return_to_beta(session, release):
    release.state = "beta"
    transition(session, release, "halt", actor=ADMIN, reason="crash in kds printing")
    assert (release.state, release.halted_from) == ("halted", "beta")
    transition(session, release, "resume", actor=ADMIN, reason="fixed by config")
    assert (release.state, release.halted_from) == ("beta", None)


def test_stale_lock_is_a_conflict(session, release):
    with pytest.raises(TransitionError, match="changed since you loaded"):
        transition(session, release, "submit", actor=ADMIN, expected_lock=release.lock_version - 1)


def test_unknown_action_is_422(session, release):
    with pytest.raises(TransitionError) as info:
        transition(session, release, "teleport", actor=ADMIN)
    assert info.value.status == 422
