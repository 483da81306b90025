from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from beta.cohort import FillFilters, FillRequest, rank_key
from beta.errors import Conflict, InvalidInput, NotFound
from beta.models import CohortEvent, Device, Store, StoreFreeze
from beta.store import (
    active_freeze,
    apply_fill,
    cohort_history,
    create_device,
    create_store,
    delete_device,
    enrol_store,
    freeze_store,
    lift_freeze,
    list_devices,
    list_freezes,
    list_stores,
    preview_fill,
    remove_store,
    require_store,
    unpin_store,
    update_device,
    update_store,
)


def test_create_store_normalises_and_reports(session: Session, now: datetime) -> None:
    change = create_store(
        session=session,
        external_id=" S001 ",
        name=" Shibuya ",
        region="kanto",
        timezone="Asia/Tokyo",
        tags=["fc:sakura", " hw:gen3", "fc:sakura", ""],
        actor="alice",
        now=now,
    )
    assert change.before is None
    assert change.after["external_id"] == "S001"
    assert change.after["name"] == "Shibuya"
    assert change.after["tags"] == ["fc:sakura", "hw:gen3"]
    assert (change.store.update_window_start, change.store.update_window_end) == ("02:00", "05:00")
    assert change.store.created_at == now and change.store.created_at.tzinfo is not None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"external_id": ""}, "external_id"),
        ({"external_id": "S 001"}, "external_id"),
        ({"external_id": "-S001"}, "external_id"),
        ({"external_id": "S" * 65}, "external_id"),
        ({"name": "  "}, "name"),
        ({"timezone": "Tokyo"}, "timezone"),
        ({"timezone": "+09:00"}, "timezone"),
        ({"timezone": "asia/tokyo"}, "timezone"),
        ({"update_window_start": "2:00"}, "update_window_start"),
        ({"update_window_end": "24:00"}, "update_window_end"),
        ({"update_window_start": "05:00"}, "update_window_end"),  # empty window
        ({"tags": ["a;b"]}, "tags"),
        ({"tags": "fc:sakura"}, "tags"),
        ({"actor": ""}, "actor"),
    ],
)
def test_create_store_rejects_bad_fields(
    session: Session, now: datetime, fields: dict[str, Any], field: str
) -> None:
    values: dict[str, Any] = {"external_id": "S001", "name": "Shibuya", "actor": "alice"}
    values.update(fields)
    with pytest.raises(InvalidInput) as error:
        create_store(session=session, now=now, **values)
    assert error.value.field == field
    assert session.exec(select(Store)).all() == []


def test_duplicate_store_is_a_conflict(session: Session, make_store: Any, now: datetime) -> None:
    make_store("S001")
    with pytest.raises(Conflict):
        create_store(session=session, external_id="S001", name="again", actor="a", now=now)


def test_update_store_changes_only_what_is_given(
    session: Session, make_store: Any, now: datetime
) -> None:
    store = make_store("S001", region="kanto", tags=["a"])
    later = now + timedelta(hours=1)
    change = update_store(
        session=session,
        store=store,
        timezone="America/Los_Angeles",
        update_window_start="22:00",
        actor="bob",
        now=later,
    )
    assert change.before is not None
    assert change.before["timezone"] == "Asia/Tokyo"
    assert change.after["timezone"] == "America/Los_Angeles"
    assert (store.update_window_start, store.update_window_end) == ("22:00", "05:00")
    assert store.region == "kanto" and store.tags == ["a"]
    assert store.updated_at == later
    with pytest.raises(InvalidInput):
        update_store(session=session, store=store, timezone="Mars/Olympus", actor="b", now=now)
    assert store.timezone == "America/Los_Angeles"


def test_list_and_require_stores(session: Session, make_store: Any) -> None:
    make_store("S2", region="kanto", tags=["hw:gen3"])
    make_store("S1", region="osaka")
    assert [s.external_id for s in list_stores(session=session)] == ["S1", "S2"]
    assert [s.external_id for s in list_stores(session=session, region="kanto")] == ["S2"]
    assert [s.external_id for s in list_stores(session=session, tag="hw:gen3")] == ["S2"]
    with pytest.raises(NotFound):
        require_store(session=session, external_id="nope")


def test_devices(session: Session, make_store: Any, now: datetime) -> None:
    s1, s2 = make_store("S1"), make_store("S2")
    change = create_device(
        session=session, store=s1, device_id="pos-01", kind="POS", actor="a", now=now
    )
    assert change.after == {"device_id": "pos-01", "store": "S1", "kind": "pos", "label": ""}
    with pytest.raises(Conflict):
        create_device(session=session, store=s2, device_id="pos-01", kind="kds", actor="a", now=now)
    with pytest.raises(InvalidInput) as error:
        create_device(session=session, store=s2, device_id="x", kind="tablet", actor="a", now=now)
    assert error.value.field == "kind"
    moved = update_device(
        session=session, device=change.device, store=s2, label="front", actor="a", now=now
    )
    assert moved.before is not None and moved.before["store"] == "S1"
    assert moved.after == {"device_id": "pos-01", "store": "S2", "kind": "pos", "label": "front"}
    assert list_devices(session=session, store=s1) == []
    delete_device(session=session, device=change.device, actor="a", now=now)
    assert session.exec(select(Device)).all() == []


# --- the cohort --------------------------------------------------------------------------


def test_enrol_and_remove_keep_history(session: Session, make_store: Any, now: datetime) -> None:
    store = make_store("S1")
    first = enrol_store(session=session, store=store, reason="owner asked", actor="sup", now=now)
    assert first.before == {"store": "S1", "in_beta": False, "beta_pinned": False}
    assert first.after == {"store": "S1", "in_beta": True, "beta_pinned": True}
    later = now + timedelta(days=3)
    remove_store(session=session, store=store, reason="busy season", actor="rm", now=later)
    assert (store.in_beta, store.beta_pinned) == (False, True)
    history = cohort_history(session=session, store=store)
    assert [(h.action, h.source, h.reason, h.actor) for h in history] == [
        ("remove", "manual", "busy season", "rm"),
        ("enrol", "manual", "owner asked", "sup"),
    ]
    assert history[0].at == later


@pytest.mark.parametrize("reason", ["", "   "])
def test_reason_is_required(session: Session, make_store: Any, now: datetime, reason: str) -> None:
    store = make_store("S1")
    for action in (enrol_store, remove_store):
        with pytest.raises(InvalidInput) as error:
            action(session=session, store=store, reason=reason, actor="sup", now=now)
        assert error.value.field == "reason"
    assert session.exec(select(CohortEvent)).all() == []
    assert not store.in_beta


def test_repeated_decisions_are_conflicts(session: Session, make_store: Any, now: datetime) -> None:
    store = make_store("S1")
    enrol_store(session=session, store=store, reason="r", actor="a", now=now)
    with pytest.raises(Conflict):
        enrol_store(session=session, store=store, reason="r", actor="a", now=now)
    remove_store(session=session, store=store, reason="r", actor="a", now=now)
    with pytest.raises(Conflict):
        remove_store(session=session, store=store, reason="r", actor="a", now=now)
    unpin_store(session=session, store=store, reason="back to the hash", actor="a", now=now)
    with pytest.raises(Conflict):
        unpin_store(session=session, store=store, reason="r", actor="a", now=now)


def _fleet(make_store: Any, n: int = 40) -> list[Store]:
    return [make_store(f"S{i:03d}", region="kanto" if i % 2 else "osaka") for i in range(n)]


def test_fill_preview_then_apply(session: Session, make_store: Any, now: datetime) -> None:
    stores = _fleet(make_store)
    plan = preview_fill(session=session, request=FillRequest(target_count=5))
    ranked = sorted((s.external_id for s in stores), key=rank_key)
    assert plan.add == tuple(ranked[:5])
    assert session.exec(select(CohortEvent)).all() == []  # a preview changes nothing

    result = apply_fill(session=session, plan=plan, reason="weekly beta", actor="rm", now=now)
    assert len(result.events) == 5
    assert {s.external_id for s in list_stores(session=session, in_beta=True)} == set(ranked[:5])
    assert all(not s.beta_pinned for s in stores)
    assert {e.source for e in result.events} == {"fill"}

    # raise: only adds; lower: only removes the highest ranked
    bigger = preview_fill(session=session, request=FillRequest(target_count=8))
    assert (bigger.add, bigger.remove) == (tuple(ranked[5:8]), ())
    apply_fill(session=session, plan=bigger, reason="more", actor="rm", now=now)
    smaller = preview_fill(session=session, request=FillRequest(target_count=6))
    assert (smaller.add, smaller.remove) == ((), tuple(ranked[6:8]))


def test_manual_decisions_survive_fills(session: Session, make_store: Any, now: datetime) -> None:
    stores = {s.external_id: s for s in _fleet(make_store)}
    ranked = sorted(stores, key=rank_key)
    remove_store(session=session, store=stores[ranked[0]], reason="owner", actor="s", now=now)
    enrol_store(session=session, store=stores[ranked[-1]], reason="owner", actor="s", now=now)
    plan = preview_fill(session=session, request=FillRequest(target_count=3))
    assert plan.add == (ranked[1], ranked[2])
    apply_fill(session=session, plan=plan, reason="fill", actor="rm", now=now)
    empty = preview_fill(session=session, request=FillRequest(target_count=0))
    assert empty.remove == (ranked[1], ranked[2])
    apply_fill(session=session, plan=empty, reason="pause", actor="rm", now=now)
    assert [s.external_id for s in list_stores(session=session, in_beta=True)] == [ranked[-1]]


def test_stale_plan_is_refused(session: Session, make_store: Any, now: datetime) -> None:
    stores = _fleet(make_store)
    plan = preview_fill(
        session=session,
        request=FillRequest(target_percent=10, filters=FillFilters(regions=frozenset({"kanto"}))),
    )
    assert len(plan.add) == 2
    chosen = next(s for s in stores if s.external_id == plan.add[0])
    remove_store(session=session, store=chosen, reason="owner", actor="s", now=now)
    with pytest.raises(Conflict):
        apply_fill(session=session, plan=plan, reason="fill", actor="rm", now=now)
    assert [e.source for e in session.exec(select(CohortEvent))] == ["manual"]


def test_fill_needs_a_reason(session: Session, make_store: Any, now: datetime) -> None:
    _fleet(make_store, 5)
    plan = preview_fill(session=session, request=FillRequest(target_count=2))
    with pytest.raises(InvalidInput):
        apply_fill(session=session, plan=plan, reason="", actor="rm", now=now)
    assert list_stores(session=session, in_beta=True) == []


# --- freezes -----------------------------------------------------------------------------


def test_freeze_and_lift(session: Session, make_store: Any, now: datetime) -> None:
    store = make_store("S1")
    change = freeze_store(
        session=session,
        store=store,
        starts_at=now,
        ends_at=now + timedelta(days=2),
        reason="grand opening",
        actor="sup",
        now=now,
    )
    assert change.after["reason"] == "grand opening"
    assert active_freeze(session=session, store=store, now=now) == change.freeze
    assert active_freeze(session=session, store=store, now=now + timedelta(days=2)) is None
    assert active_freeze(session=session, store=store, now=now - timedelta(seconds=1)) is None
    assert list_freezes(session=session, store=store, current_at=now) == [change.freeze]

    lifted = lift_freeze(session=session, freeze=change.freeze, actor="rm", now=now)
    assert lifted.after["lifted_by"] == "rm"
    assert active_freeze(session=session, store=store, now=now) is None
    with pytest.raises(Conflict):
        lift_freeze(session=session, freeze=change.freeze, actor="rm", now=now)
    assert len(session.exec(select(StoreFreeze)).all()) == 1  # history is kept


@pytest.mark.parametrize(
    ("start", "end", "reason", "field"),
    [
        (0, 0, "r", "ends_at"),
        (2, 1, "r", "ends_at"),
        (-5, -1, "r", "ends_at"),  # already over
        (0, 1, " ", "reason"),
    ],
)
def test_bad_freezes_are_refused(
    session: Session, make_store: Any, now: datetime, start: int, end: int, reason: str, field: str
) -> None:
    store = make_store("S1")
    with pytest.raises(InvalidInput) as error:
        freeze_store(
            session=session,
            store=store,
            starts_at=now + timedelta(hours=start),
            ends_at=now + timedelta(hours=end),
            reason=reason,
            actor="sup",
            now=now,
        )
    assert error.value.field == field
    assert session.exec(select(StoreFreeze)).all() == []


def test_two_freezes_starting_together_conflict(
    session: Session, make_store: Any, now: datetime
) -> None:
    store = make_store("S1")
    kwargs: dict[str, Any] = {
        "session": session,
        "store": store,
        "starts_at": now,
        "ends_at": now + timedelta(days=1),
        "reason": "r",
        "actor": "a",
        "now": now,
    }
    freeze_store(**kwargs)
    with pytest.raises(Conflict):
        freeze_store(**kwargs)
