"""Staged rollout of a release: advancing the stage, and who each stage reaches.

Promoting a release (``beta → rolling_out``, a lifecycle transition) puts it on the app's
first stage; :func:`advance_stage` moves it to the next one. A halt keeps ``stage_percent``:
the halted state itself sends the stage's stores back to the previous release, and resuming
offers the release to exactly the same stores again (the buckets never move).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from beta.cohort import in_stage
from beta.errors import Conflict, InvalidInput
from beta.rollout import DEFAULT_STAGES, check_stages, next_stage, stage_coverage
from service import audit
from service.beta.answers import snapshot
from service.models import utcnow
from service.releases.lifecycle import Actor
from service.releases.models import App, Release

__all__ = [
    "advance_consequence",
    "advance_stage",
    "app_stages",
    "complete_consequence",
    "first_stage_on_promote",
    "halt_consequence",
    "promote_consequence",
    "reach",
    "rollout_summary",
]


def app_stages(app: App) -> tuple[float, ...]:
    try:
        return check_stages(app.rollout_stages)
    except InvalidInput:
        return DEFAULT_STAGES


def _app(session: Session, release: Release) -> App:
    app = session.get(App, release.app_id)
    assert app is not None
    return app


def advance_stage(
    session: Session, release: Release, actor: str, *, expected_percent: int | None = None
) -> float:
    """Move a rolling-out release to its app's next stage; returns the new percentage.

    Reaching 100 % leaves the release rolling out: the release manager marks it released.
    ``expected_percent`` (the stage the form was shown at) turns a double submit into a
    :class:`Conflict` instead of skipping a stage.
    """
    if release.state != "rolling_out":
        raise Conflict(
            f"only a release that is rolling out can advance (this one is "
            f"{release.state.replace('_', ' ')})",
            field="state",
        )
    if expected_percent is not None and expected_percent != release.stage_percent:
        raise Conflict(
            f"the rollout is already at {release.stage_percent} %; reload the page",
            field="stage_percent",
        )
    stages = app_stages(_app(session, release))
    target = next_stage(stages, release.stage_percent)
    if target is None:
        raise Conflict("the rollout already reaches every store; mark it released", field="stage")
    before = release.stage_percent
    release.stage_percent = round(target)
    release.updated_at = utcnow()
    release.lock_version += 1
    session.add(release)
    audit.record(
        session,
        actor=actor,
        action="release.advance_stage",
        subject_type="release",
        subject_id=release.id,
        before={"stage_percent": before},
        after={"stage_percent": release.stage_percent},
        summary=f"rollout of {release.version} advanced from {before} % to "
        f"{release.stage_percent} % of the other stores",
    )
    return target


def first_stage_on_promote(
    session: Session, release: Release, before: str, after: str, actor: Actor
) -> None:
    """A lifecycle reaction: promotion (beta → rolling out) starts at the app's first stage."""
    if before == "beta" and after == "rolling_out":
        release.stage_percent = round(app_stages(_app(session, release))[0])
        session.add(release)


@dataclass(frozen=True)
class Reach:
    """How many stores a release is offered to at a stage, out of the fleet."""

    stores: int  # beta stores and the other stores the stage reaches
    total: int

    @property
    def left(self) -> int:
        return self.total - self.stores


def reach(session: Session, *percents: float) -> list[Reach]:
    """The stores a rollout at each of ``percents`` % reaches (with the beta cohort): one read
    of the fleet and one pass over its stores (``beta.rollout.stage_coverage``)."""
    fleet = snapshot(session)
    return [
        Reach(stores=c.store_count, total=c.total)
        for c in stage_coverage(fleet.stores.values(), percents)
    ]


def _stores(count: int) -> str:
    return f"{count} store{'' if count == 1 else 's'}"


def complete_consequence(session: Session, release: Release) -> str:
    """ "Mark released" during a staged rollout: how many stores jump to the release at once."""
    if release.state != "rolling_out" or release.stage_percent >= 100:
        return ""
    (now,) = reach(session, release.stage_percent)
    return (
        f"The rollout is at {release.stage_percent} %: {_stores(now.left)} of {now.total} that "
        "it has not reached yet jump to this release at once, skipping the remaining stages."
    )


def promote_consequence(session: Session, release: Release) -> str:
    """Promotion: how many stores the first stage reaches beyond the beta cohort."""
    first = app_stages(_app(session, release))[0]
    beta, stage = reach(session, 0, first)
    return (
        f"The first stage ({first:g} %) offers it to {_stores(stage.stores - beta.stores)} "
        f"beyond the {_stores(beta.stores)} of the beta cohort ({stage.stores} of {stage.total})."
    )


def halt_consequence(session: Session, release: Release) -> str:
    """A halt: how many stores go back to the previous release."""
    percent = release.stage_percent if release.state == "rolling_out" else 0
    (now,) = reach(session, percent)
    return f"{_stores(now.stores)} of {now.total} are offered the previous release again."


def advance_consequence(session: Session, release: Release) -> str:
    """Advancing the stage: how many stores it adds."""
    target = next_stage(app_stages(_app(session, release)), release.stage_percent)
    if release.state != "rolling_out" or target is None:
        return ""
    now, then = reach(session, release.stage_percent, target)
    return (
        f"Advancing from {release.stage_percent} % to {target:g} % offers this release to "
        f"{_stores(then.stores - now.stores)} more ({then.stores} of {then.total})."
    )


def rollout_summary(session: Session, release: Release) -> dict[str, Any]:
    """Stores and devices reached by the beta cohort and by each stage, for the release page."""
    app = _app(session, release)
    fleet = snapshot(session)
    stages = app_stages(app)
    devices_per_store = Counter(fleet.devices.values())
    beta_stores = [s.external_id for s in fleet.stores.values() if s.in_beta]
    others = [s.external_id for s in fleet.stores.values() if not s.in_beta]
    beta_devices = sum(devices_per_store[s] for s in beta_stores)
    total_devices = sum(devices_per_store.values())
    coverage = fleet.stage_coverage(app.slug) if app.slug in fleet.apps else []
    audience = release.halted_from if release.state == "halted" else release.state
    rolling = audience == "rolling_out" or release.state == "released"
    current = 100 if release.state == "released" else release.stage_percent
    rows = []
    for stage in coverage:
        devices = beta_devices + sum(
            devices_per_store[s] for s in others if in_stage(s, stage.percent)
        )
        rows.append(
            {
                "percent": stage.percent,
                "stores": stage.store_count,
                "added_stores": stage.added,
                "devices": devices,
                "reached": rolling and stage.percent <= current,
                "current": rolling and stage.percent == current,
            }
        )
    upcoming = next_stage(stages, current) if release.state == "rolling_out" else None
    return {
        "release_id": release.id,
        "app": app.slug,
        "version": release.version,
        "state": release.state,
        "halted": release.state == "halted",
        "stage_percent": current,
        "stages": rows,
        "beta": {"stores": len(beta_stores), "devices": beta_devices},
        "total": {"stores": len(fleet.stores), "devices": total_devices},
        "next_stage": upcoming,
        "can_advance": upcoming is not None,
    }
