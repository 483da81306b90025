"""``relgov adoption rollup|prune``, the worker's pass, and the demo seeder."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from service.adoption import demo, periodic
from service.models import AuditEvent
from service.settings import Settings, SettingsError
from tests.service.adoption.conftest import World, make_app, make_fleet, make_release, utcnow_naive
from version_monitor.models import AdoptionDaily


def rollup_rows(session: Session) -> list[tuple[object, ...]]:
    session.expire_all()
    return [
        tuple(r)
        for r in session.execute(
            select(
                AdoptionDaily.day,  # type: ignore[call-overload]
                AdoptionDaily.app,
                AdoptionDaily.version,
                AdoptionDaily.channel,
                AdoptionDaily.device_kind,
                AdoptionDaily.devices,
                AdoptionDaily.stores,
            ).order_by(
                AdoptionDaily.day,
                AdoptionDaily.version,
                AdoptionDaily.channel,
                AdoptionDaily.device_kind,
            )
        ).all()
    ]


def test_rollup_is_idempotent(runner, world: World, session: Session):
    before = rollup_rows(session)
    result = runner.invoke(args=["adoption", "rollup", "--days", "10"])
    assert result.exit_code == 0, result.output
    assert "rolled up the last 10 day(s)" in result.output
    once = rollup_rows(session)
    runner.invoke(args=["adoption", "rollup", "--days", "10"])
    assert rollup_rows(session) == once
    # The simulator writes what the rollup computes, so recomputing changes nothing.
    assert len(once) == len(before)


def test_rollup_range_and_bad_input(runner, world: World):
    start = (world.now - timedelta(days=5)).date().isoformat()
    end = world.now.date().isoformat()
    result = runner.invoke(args=["adoption", "rollup", "--from", start, "--to", end])
    assert result.exit_code == 0, result.output
    bad = runner.invoke(args=["adoption", "rollup", "--from", end, "--to", start])
    assert bad.exit_code == 2 and "--from must not be after --to" in bad.output
    half = runner.invoke(args=["adoption", "rollup", "--from", start])
    assert half.exit_code == 2 and "both --from and --to" in half.output
    both = runner.invoke(args=["adoption", "rollup", "--days", "2", "--from", start, "--to", end])
    assert both.exit_code == 2
    assert runner.invoke(args=["adoption", "rollup", "--days", "0"]).exit_code == 2


def test_prune_keeps_the_retention_and_is_audited(
    runner, world: World, session: Session, monkeypatch
):
    result = runner.invoke(args=["adoption", "prune", "--keep-days", "30"])
    assert result.exit_code == 0, result.output
    session.expire_all()
    oldest = session.execute(select(func.min(AdoptionDaily.day))).scalar_one()  # type: ignore[arg-type]
    assert oldest >= (world.now - timedelta(days=30)).date()
    event = (
        session.exec(select(AuditEvent).where(AuditEvent.action == "adoption.rollups_pruned"))
        .scalars()
        .one()
    )  # type: ignore[call-overload]
    assert event.after["keep_days"] == 30
    with pytest.raises(SettingsError, match="RELGOV_ROLLUP_RETENTION_DAYS"):
        Settings.from_env({"RELGOV_ROLLUP_RETENTION_DAYS": "soon"})
    settings = runner.app.config["RELGOV_SETTINGS"]
    monkeypatch.setitem(
        runner.app.config, "RELGOV_SETTINGS", replace(settings, rollup_retention_days=20)
    )
    assert runner.invoke(args=["adoption", "prune"]).exit_code == 0
    session.expire_all()
    oldest = session.execute(select(func.min(AdoptionDaily.day))).scalar_one()  # type: ignore[arg-type]
    assert oldest >= (world.now - timedelta(days=20)).date()


def test_periodic_rollup_runs_one_pass(app, world: World, session: Session):
    before = rollup_rows(session)
    periodic.upkeep(app)
    assert len(rollup_rows(session)) == len(before)


def test_demo_seeds_history_from_the_releases(app, session: Session):
    now = utcnow_naive()
    pos = make_app(session, "pos")
    make_app(session, "kds")
    make_fleet(session, stores=20, beta=3, per_store=2)
    make_release(
        session,
        pos,
        "3.20.0",
        state="released",
        beta_at=now - timedelta(days=9),
        rollout_started_at=now - timedelta(days=7),
        released_at=now - timedelta(days=6),
    )
    make_release(session, pos, "3.21.0", state="beta", beta_at=now - timedelta(days=2))
    make_release(session, pos, "3.22.0", state="draft")
    started = time.perf_counter()
    with app.app_context():
        lines = demo.seed(session)
    session.commit()
    assert time.perf_counter() - started < 60
    text = "\n".join(lines)
    assert "pos: 150 days over 40 devices" in text
    assert "kds: no release has shipped" in text
    versions = {
        v
        for (v,) in session.execute(
            select(AdoptionDaily.version).where(AdoptionDaily.app == "pos")
        ).all()  # type: ignore[call-overload]
    }
    assert {"3.21.0", "3.20.0", "3.10.0"} <= versions
    assert "3.22.0" not in versions
