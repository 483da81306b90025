"""Sign-offs, overrides, approval and separation of duties."""

import threading

import pytest
from sqlmodel import Session, select

from service.models import AuditEvent
from service.releases import checklist, services
from service.releases.lifecycle import Actor, TransitionError, transition
from service.releases.models import ReleaseItem, SignOff
from tests.builders import make_user, run_jobs
from tests.service.releases.release_fixtures import registered_release


@pytest.fixture
def release(app, session, pos, people):
    return registered_release(app, session, pos, people["engineer"], submit=True)


def _item(session, release, title):
    return session.exec(
        select(ReleaseItem).where(ReleaseItem.release_id == release.id, ReleaseItem.title == title)
    ).one()


def _status(session, release, title):
    return next(s for s in checklist.item_statuses(session, release) if s.item.title == title)


def _sign(session, release, title, user, decision, **extra):
    """``user`` signs the item called ``title`` (``extra``: comment, expected_lock)."""
    item = _item(session, release, title)
    signoff, _ = checklist.sign_off(
        session, release=release, item=item, user=user, decision=decision, **extra
    )
    return signoff


def _approve(session, release, people):
    transition(session, release, "approve", actor=services.actor_for(people["release_manager"]))


def sign_all(session, release, people):
    _sign(session, release, "Regression tests pass", people["qa"], "approve")
    _sign(session, release, "Rollback plan written", people["engineer"], "approve")
    session.commit()


def test_registration_generates_notes_and_checklist(session, release):
    statuses = checklist.item_statuses(session, release)
    assert [s.item.title for s in statuses][:2] == ["Notes generated", "Regression tests pass"]
    notes = statuses[0]
    assert notes.status == "passed" and "3 commits" in notes.evidence
    assert release.from_ref == "v1.0.0" or release.from_ref is None


def test_only_the_owner_role_signs(session, release, people):
    with pytest.raises(checklist.ReleaseError) as info:
        _sign(session, release, "Rollback plan written", people["support"], "approve")
    assert info.value.status == 403 and "only a engineer" in info.value.message


def test_who_may_sign_is_checked_before_the_release_state_and_the_input(session, release, people):
    release.state = "approved"  # sign-offs are closed (409 for the owner)
    session.add(release)
    session.commit()
    for user, decision in [(people["viewer"], "approve"), (people["support"], "nonsense")]:
        with pytest.raises(checklist.ReleaseError) as info:
            _sign(session, release, "Regression tests pass", user, decision)
        assert info.value.status == 403, info.value.message
    with pytest.raises(checklist.ReleaseError) as info:
        _sign(session, release, "Regression tests pass", people["qa"], "approve")
    assert info.value.status == 409


def _signoffs(session, release):
    session.expire_all()
    rows = session.exec(select(SignOff).where(SignOff.release_id == release.id))
    return [(row.user_email, row.decision) for row in rows]


def test_the_same_decision_twice_is_recorded_once(session, release, people):
    item = _item(session, release, "Regression tests pass")
    first, created = checklist.sign_off(
        session, release=release, item=item, user=people["qa"], decision="approve", comment="ok"
    )
    session.commit()
    assert created
    again, created = checklist.sign_off(
        session, release=release, item=item, user=people["qa"], decision="approve", comment=" ok "
    )
    session.commit()
    assert not created and again.id == first.id
    assert _signoffs(session, release) == [("qa@example.com", "approve")]
    assert (
        len(session.exec(select(AuditEvent).where(AuditEvent.action == "signoff.approve")).all())
        == 1
    )
    with pytest.raises(checklist.ReleaseError) as info:
        _sign(session, release, "Regression tests pass", people["qa"], "approve", comment="retest")
    assert info.value.status == 409 and "already chose approve" in info.value.message
    session.rollback()
    assert _signoffs(session, release) == [("qa@example.com", "approve")]


def test_a_decision_that_no_longer_stands_may_be_taken_again(session, release, people):
    qa2 = make_user(session, email="qa2@example.com", role="qa")
    title = "Regression tests pass"
    _sign(session, release, title, people["qa"], "approve")
    _sign(session, release, title, qa2, "approve")
    _sign(session, release, title, people["qa"], "approve")  # still stands: nothing new
    _sign(session, release, title, qa2, "block", comment="printer jams")
    _sign(session, release, title, people["qa"], "approve")  # after a block: recorded
    session.commit()
    assert _signoffs(session, release) == [
        ("qa@example.com", "approve"),
        ("qa2@example.com", "approve"),
        ("qa2@example.com", "block"),
        ("qa@example.com", "approve"),
    ]


def test_the_same_sign_off_sent_twice_at_once_is_recorded_once(
    app, session, release, people, database_url
):
    from service.db import make_engine

    engine = make_engine(database_url)
    item_id = _item(session, release, "Regression tests pass").id
    barrier = threading.Barrier(2)
    errors = []

    def sign():
        try:
            with Session(engine, expire_on_commit=False) as own:
                barrier.wait()
                rel = own.get(type(release), release.id)
                item = own.get(ReleaseItem, item_id)
                user = own.get(type(people["qa"]), people["qa"].id)
                checklist.sign_off(own, release=rel, item=item, user=user, decision="approve")
                own.commit()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sign) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    assert errors == []
    assert _signoffs(session, release) == [("qa@example.com", "approve")]


def test_automatic_items_cannot_be_signed(session, release, people):
    with pytest.raises(checklist.ReleaseError, match="automatically"):
        _sign(session, release, "Notes generated", people["engineer"], "approve")


def test_history_is_append_only_and_status_is_the_latest(session, release, people):
    for decision, comment in [("approve", ""), ("block", "printer test flaky"), ("approve", "ok")]:
        _sign(session, release, "Regression tests pass", people["qa"], decision, comment=comment)
    session.commit()
    status = _status(session, release, "Regression tests pass")
    assert [s.decision for s in status.history] == ["approve", "block", "approve"]
    assert status.status == "approved"


def test_reject_needs_a_comment(session, release, people):
    with pytest.raises(checklist.ReleaseError) as info:
        _sign(session, release, "Regression tests pass", people["qa"], "reject")
    assert info.value.field == "comment"


def test_approval_needs_every_required_item(session, release, people):
    rm = services.actor_for(people["release_manager"])
    with pytest.raises(TransitionError, match="required item"):
        transition(session, release, "approve", actor=rm)
    session.rollback()
    sign_all(session, release, people)
    transition(session, release, "approve", actor=rm)
    session.commit()
    assert release.state == "approved"


def test_a_rejected_item_blocks_approval(session, release, people):
    sign_all(session, release, people)
    _sign(
        session,
        release,
        "Regression tests pass",
        people["qa"],
        "reject",
        comment="crash on receipt print",
    )
    session.commit()
    with pytest.raises(TransitionError, match="Regression tests pass \\(rejected\\)"):
        _approve(session, release, people)


def test_only_a_release_manager_approves(session, release, people):
    sign_all(session, release, people)
    with pytest.raises(TransitionError) as info:
        transition(session, release, "approve", actor=services.actor_for(people["qa"]))
    assert info.value.status == 403


def test_registrant_cannot_approve(session, pos, people, app):
    rm = people["release_manager"]
    with app.app_context():
        release, _ = services.register_release(
            session, app=pos, version="1.1.0", git_ref="v1.1.0", actor=services.actor_for(rm)
        )
        session.commit()
    run_jobs(app)  # the notes, from git
    session.refresh(release)
    transition(session, release, "submit", actor=services.actor_for(rm))
    sign_all(session, release, people)
    with pytest.raises(TransitionError, match="registered the release"):
        transition(session, release, "approve", actor=services.actor_for(rm))


def test_approver_cannot_be_the_only_signer(session, release, people):
    rm = people["release_manager"]
    # Make every manual item the release manager's, so they would be the only signer.
    for item in checklist.release_items(session, release):
        if item.mode == "manual":
            item.owner_role = "release_manager"
            session.add(item)
    session.commit()
    for item in checklist.release_items(session, release):
        if item.mode == "manual" and item.required:
            checklist.sign_off(session, release=release, item=item, user=rm, decision="approve")
    session.commit()
    with pytest.raises(TransitionError, match="only person who signed"):
        transition(session, release, "approve", actor=services.actor_for(rm))


def test_separation_of_duties_can_be_switched_off(session, release, people, pos):
    pos.separation_of_duties = False
    session.add(pos)
    session.commit()
    release.created_by = people["release_manager"].actor
    session.add(release)
    session.commit()
    sign_all(session, release, people)
    _approve(session, release, people)
    assert release.state == "approved"


def test_admin_override_is_highlighted(session, release, people, admin):
    sign_all(session, release, people)
    regression = "Regression tests pass"
    _sign(session, release, regression, people["qa"], "block", comment="waiting for device lab")
    item = _item(session, release, regression)
    with pytest.raises(checklist.ReleaseError, match="only an admin"):
        checklist.override_item(
            session, release=release, item=item, user=people["release_manager"], reason="x"
        )
    checklist.override_item(
        session,
        release=release,
        item=item,
        user=admin,
        reason="lab down; tested manually on two stores",
    )
    session.commit()
    status = _status(session, release, regression)
    assert status.ok and status.overridden is not None
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "signoff.override")).one()
    assert event.highlight
    _approve(session, release, people)
    assert release.state == "approved"


def test_sign_offs_close_after_approval(session, release, people):
    sign_all(session, release, people)
    _approve(session, release, people)
    session.commit()
    with pytest.raises(checklist.ReleaseError) as info:
        _sign(session, release, "Support briefed", people["support"], "approve")
    assert info.value.status == 409


def test_two_people_signing_at_once_are_both_recorded(app, session, release, people, database_url):
    """Two threads, two sessions, the same moment: both decisions land, none is lost."""
    from service.db import make_engine

    engine = make_engine(database_url)
    qa_item = _item(session, release, "Regression tests pass").id
    eng_item = _item(session, release, "Rollback plan written").id
    barrier = threading.Barrier(2)
    errors = []

    def sign(user_key, item_id):
        try:
            with Session(engine, expire_on_commit=False) as own:
                barrier.wait()
                rel = own.get(type(release), release.id)
                item = own.get(ReleaseItem, item_id)
                user = own.get(type(people[user_key]), people[user_key].id)
                checklist.sign_off(own, release=rel, item=item, user=user, decision="approve")
                own.commit()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=sign, args=("qa", qa_item)),
        threading.Thread(target=sign, args=("engineer", eng_item)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    assert errors == []
    assert len(session.exec(select(SignOff).where(SignOff.release_id == release.id)).all()) == 2


def test_stale_form_gets_a_conflict(session, release, people):
    stale = release.lock_version
    sign_all(session, release, people)
    _approve(session, release, people)
    session.commit()
    with pytest.raises(checklist.ReleaseError) as info:
        _sign(
            session, release, "Support briefed", people["support"], "approve", expected_lock=stale
        )
    assert info.value.status == 409 and "changed since you loaded" in info.value.message


def test_registration_is_idempotent_and_refuses_lower_versions(app, session, release, pos, people):
    actor = Actor(name="token:ci")
    with app.app_context():
        again, created = services.register_release(
            session, app=pos, version="1.1.0", git_ref="v1.1.0", actor=actor
        )
        assert again.id == release.id and not created
        release.state = "released"
        session.add(release)
        session.commit()
        with pytest.raises(checklist.ReleaseError) as info:
            services.register_release(
                session, app=pos, version="1.0.9", git_ref="v1.0.0", actor=actor
            )
        assert info.value.status == 409 and "lower than 1.1.0" in info.value.message
        with pytest.raises(checklist.ReleaseError) as info:
            services.register_release(session, app=pos, version="latest", git_ref="x", actor=actor)
        assert info.value.field == "version"
