"""Recording incidents, their release suggestion, the weekly trend, the promotion gates.

Functions take the session and never commit: the caller commits once, so a refused request
leaves nothing half-written. ``version_monitor`` tables hold naive UTC; everything here is
aware UTC, converted at the boundary (:func:`_naive`).

Configuration (environment, read when an incident is scored):

- ``RELGOV_INCIDENT_FEW_STORES`` (default 100): fewer affected stores than this is scope 1.
- ``RELGOV_INCIDENT_MOST_SHARE`` (default 0.5): more than this share of the active stores is
  scope 3. Exactly that share is still scope 2.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func
from sqlmodel import Session, col, select

import utc
from beta.models import Store
from incidents import business_days, scoring
from service import audit
from service.adoption.services import beta_adoption_for_checklist
from service.errors import DomainError
from service.incidents.models import GATE_TITLES, GATES, GateOverride, Incident, IncidentStore
from service.models import utcnow
from service.releases.lifecycle import Actor, TransitionError, transition
from service.releases.models import App, Release
from version_monitor.models import DeviceState, VersionChange, device_state_table
from version_monitor.seen import seen_since
from versioning import sort_key

ACTIVE_WINDOW = timedelta(hours=24)
FUTURE_SKEW = timedelta(minutes=5)
MAX_STORES = 100_000
OVERRIDE_STATES = ("approved", "beta", "halted")


class IncidentError(DomainError):
    """A refused incident or gate request."""


# reaction(session, incident) after an incident was recorded or changed, in its transaction.
IncidentReaction = Callable[[Session, Incident], Any]
# Installed by ``service/wiring.py`` (every app of a process is wired the same way).
_on_change: tuple[IncidentReaction, ...] = ()


def install(on_change: Sequence[IncidentReaction]) -> None:
    """Who hears that an incident was recorded or changed."""
    global _on_change
    _on_change = tuple(on_change)


def _changed(session: Session, incident: Incident) -> None:
    for react in _on_change:
        react(session, incident)


# --- settings --------------------------------------------------------------------------


def scope_thresholds() -> scoring.ScopeThresholds:
    """The scope bands (``RELGOV_INCIDENT_FEW_STORES`` / ``RELGOV_INCIDENT_MOST_SHARE``)."""
    settings = current_app.config["RELGOV_SETTINGS"]
    return scoring.ScopeThresholds(
        few_below=settings.incident_few_stores, most_share=settings.incident_most_share
    )


# --- stores, active stores, release suggestion -----------------------------------------


HEADER_WORDS = frozenset({"store_id", "store", "external_id", "id"})


def parse_store_ids(text: str, *, csv_file: bool = False) -> list[str]:
    """External store ids, in order and without repeats. Pasted text: separated by new
    lines, commas, semicolons or spaces. A CSV file: the first column of each row (a header
    row such as ``store_id`` is skipped)."""
    if csv_file:
        tokens = [row[0] for row in csv.reader(text.splitlines()) if row]
    else:
        tokens = text.replace(",", " ").replace(";", " ").split()
    ids: list[str] = []
    for raw in tokens:
        token = raw.strip().strip('"').strip()
        if token and token.lower() not in HEADER_WORDS and token not in ids:
            ids.append(token)
    return ids


def resolve_stores(session: Session, external_ids: Sequence[str]) -> list[Store]:
    """The stores with these external ids, or 422 naming every unknown one."""
    if len(external_ids) > MAX_STORES:
        raise IncidentError(f"at most {MAX_STORES:,} stores", field="stores")
    found: dict[str, Store] = {}
    wanted = list(dict.fromkeys(external_ids))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        for store in session.exec(select(Store).where(col(Store.external_id).in_(chunk))).all():
            found[store.external_id] = store
    unknown = [ext for ext in wanted if ext not in found]
    if unknown:
        shown = ", ".join(unknown[:10]) + (
            f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        )
        raise IncidentError(
            f"unknown store{'s' if len(unknown) > 1 else ''}: {shown}", field="stores"
        )
    return [found[ext] for ext in wanted]


def active_stores(session: Session, at: datetime) -> tuple[int, str]:
    """Stores with a device seen within 24 h before ``at`` (or since), and how they were
    counted; every store when no device has reported in that window."""
    since = utc.naive(at) - ACTIVE_WINDOW
    online = session.exec(
        select(func.count(func.distinct(DeviceState.store_id))).where(
            seen_since(device_state_table, since)
        )
    ).one()
    if online:
        return int(online), f"{online:,} stores with a device seen in the 24 h before the start"
    total = int(session.exec(select(func.count()).select_from(Store)).one())
    return total, (
        f"no device reported in the 24 h before the start, so all {total:,} stores count as active"
    )


@dataclass
class Suggestion:
    version: str | None
    release: Release | None
    devices: int  # devices of the affected stores that ran ``version``
    total: int  # devices of the affected stores with a known version
    counts: list[tuple[str, int]] = field(default_factory=list)

    @property
    def text(self) -> str:
        if self.version is None:
            return "no device of these stores had reported a version by then"
        runs = ", ".join(f"{v} ({n})" for v, n in self.counts[:4])
        return f"{self.devices} of {self.total} devices ran {self.version} at the start ({runs})"


def suggest_release(
    session: Session, app: App, store_ids: Iterable[int], started_at: datetime
) -> Suggestion:
    """The release most of the affected stores' devices ran at ``started_at``: from the
    version-change log (the last change at or before then), else the devices' current state."""
    ids = sorted(set(store_ids))
    moment = utc.naive(started_at)
    versions: dict[int, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = session.exec(
            select(VersionChange.device_id, VersionChange.to_version)
            .where(
                VersionChange.app == app.slug,
                col(VersionChange.store_id).in_(chunk),
                col(VersionChange.at) <= moment,
            )
            .order_by(col(VersionChange.at), col(VersionChange.id))
        ).all()
        for device_id, version in rows:
            versions[device_id] = version
    if not versions:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = session.exec(
                select(DeviceState.device_id, DeviceState.version).where(
                    DeviceState.app == app.slug, col(DeviceState.store_id).in_(chunk)
                )
            ).all()
            versions.update(dict(rows))
    counts = Counter(versions.values()).most_common()
    if not counts:
        return Suggestion(None, None, 0, 0)
    releases = {
        r.version: r for r in session.exec(select(Release).where(Release.app_id == app.id)).all()
    }
    with_release = [(v, n) for v, n in counts if v in releases]
    version, devices = (with_release or counts)[0]
    return Suggestion(version, releases.get(version), devices, len(versions), counts)


# --- recording -------------------------------------------------------------------------


def _check_times(
    started_at: datetime, resolved_at: datetime | None
) -> tuple[datetime, datetime | None]:
    started = utc.aware(started_at)
    if started > utcnow() + FUTURE_SKEW:
        raise IncidentError("the start cannot be in the future", field="started_at")
    resolved = utc.aware(resolved_at) if resolved_at is not None else None
    if resolved is not None and resolved < started:
        raise IncidentError("it cannot be resolved before it started", field="resolved_at")
    if resolved is not None and resolved > utcnow() + FUTURE_SKEW:
        raise IncidentError("the resolution cannot be in the future", field="resolved_at")
    return started, resolved


def _check_url(url: str) -> str:
    url = url.strip()
    if url and not url.lower().startswith(("http://", "https://")):
        raise IncidentError(
            "the postmortem link must start with http:// or https://", field="postmortem_url"
        )
    if len(url) > 1000:
        raise IncidentError(
            "the postmortem link is longer than 1,000 characters", field="postmortem_url"
        )
    return url


def _check_title(title: str) -> str:
    title = " ".join(title.split())
    if not title:
        raise IncidentError("give the incident a title", field="title")
    if len(title) > 300:
        raise IncidentError("the title is longer than 300 characters", field="title")
    return title


def find_release(session: Session, app: App, version: str, *, missing: int = 422) -> Release:
    """The release of ``app`` with ``version``; refused with status ``missing`` (422: a bad
    input; 404: what a filter asked for does not exist)."""
    release = session.exec(
        select(Release).where(Release.app_id == app.id, Release.version == version.strip())
    ).first()
    if release is None:
        raise IncidentError(
            f"{app.slug} has no release {version.strip()!r}", field="release", status=missing
        )
    return release


def record_incident(
    session: Session,
    *,
    app: App,
    title: str,
    impact: int,
    started_at: datetime,
    actor: str,
    stores: Sequence[str] = (),
    store_count: int | None = None,
    beta_store_count: int | None = None,
    resolved_at: datetime | None = None,
    postmortem_url: str = "",
    release: Release | None = None,
    suggest: bool = True,
    thresholds: scoring.ScopeThresholds,
) -> Incident:
    """Record an incident and score it with ``thresholds`` (:func:`scope_thresholds`: the
    settings). Give the affected ``stores`` (external ids) or a ``store_count``; without a
    ``release``, ``suggest`` picks the one the stores ran."""
    title = _check_title(title)
    if impact not in scoring.IMPACTS:
        raise IncidentError("impact must be 1, 3 or 5", field="impact")
    started, resolved = _check_times(started_at, resolved_at)
    url = _check_url(postmortem_url)
    if release is not None and release.app_id != app.id:
        raise IncidentError("that release belongs to another app", field="release")
    picked: list[Store] = []
    if stores:
        if store_count is not None:
            raise IncidentError("give the stores or a count, not both", field="store_count")
        if beta_store_count is not None:
            raise IncidentError(
                "the beta stores are known from the list; leave the beta count empty",
                field="beta_store_count",
            )
        picked = resolve_stores(session, stores)
        count, beta_count = len(picked), sum(1 for s in picked if s.in_beta)
    else:
        if store_count is None:
            raise IncidentError("list the affected stores or give their number", field="stores")
        if store_count < 1:
            raise IncidentError("at least one store", field="store_count")
        if store_count > MAX_STORES:
            raise IncidentError(f"at most {MAX_STORES:,} stores", field="store_count")
        beta_count = beta_store_count or 0
        if beta_count < 0 or beta_count > store_count:
            raise IncidentError(
                "the beta stores must be between 0 and the affected stores",
                field="beta_store_count",
            )
        count = store_count
    active, basis = active_stores(session, started)
    if active < 1:
        active, basis = count, "no stores are registered; the affected stores are the whole fleet"
    result = scoring.score(impact, count, active, thresholds)
    suggested = False
    if release is None and suggest and picked:
        suggestion = suggest_release(session, app, [s.id or 0 for s in picked], started)
        if suggestion.release is not None:
            release, suggested = suggestion.release, True
    incident = Incident(
        app_id=app.id or 0,
        release_id=release.id if release else None,
        release_suggested=suggested,
        title=title,
        impact=impact,
        store_count=count,
        beta_store_count=beta_count,
        stores_listed=bool(picked),
        active_stores=active,
        active_basis=basis,
        few_below=thresholds.few_below,
        most_share=thresholds.most_share,
        scope=result.scope,
        score=result.value,
        started_at=started,
        resolved_at=resolved,
        postmortem_url=url,
        created_by=actor,
    )
    session.add(incident)
    session.flush()
    for store in picked:
        session.add(
            IncidentStore(
                incident_id=incident.id or 0, store_id=store.id or 0, in_beta=store.in_beta
            )
        )
    audit.record(
        session,
        actor=actor,
        action="incident.record",
        subject_type="incident",
        subject_id=incident.id,
        after={
            "app": app.slug,
            "release": release.version if release else None,
            "release_suggested": suggested,
            "title": title,
            "impact": impact,
            "stores": count,
            "beta_stores": beta_count,
            "score": result.value,
            "derivation": result.derivation,
            "started_at": started,
            "resolved_at": resolved,
        },
        summary=f"incident #{incident.id} {app.slug}"
        + (f" {release.version}" if release else "")
        + f": {title} (score {result.value})",
    )
    _changed(session, incident)
    return incident


def derivation(incident: Incident) -> scoring.Score:
    """The incident's score recomputed from what it was scored with (for display)."""
    thresholds = scoring.ScopeThresholds(
        few_below=incident.few_below, most_share=incident.most_share
    )
    return scoring.score(incident.impact, incident.store_count, incident.active_stores, thresholds)


def update_incident(
    session: Session,
    incident: Incident,
    *,
    actor: str,
    changes: dict[str, Any],
) -> Incident:
    """Change the title, impact (rescored), release, resolution time or postmortem link."""
    app = session.get(App, incident.app_id)
    assert app is not None
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}

    def put(name: str, value: Any) -> None:
        old = getattr(incident, name)
        if old != value:
            before[name], after[name] = old, value
            setattr(incident, name, value)

    if "title" in changes:
        put("title", _check_title(changes["title"] or ""))
    if "impact" in changes:
        if changes["impact"] not in scoring.IMPACTS:
            raise IncidentError("impact must be 1, 3 or 5", field="impact")
        put("impact", changes["impact"])
    if "postmortem_url" in changes:
        put("postmortem_url", _check_url(changes["postmortem_url"] or ""))
    if "release" in changes:
        version = changes["release"]
        release = find_release(session, app, version) if version else None
        put("release_id", release.id if release else None)
        put("release_suggested", False)
    if "resolved_at" in changes:
        _, resolved = _check_times(incident.started_at, changes["resolved_at"])
        put("resolved_at", resolved)
    if not after:
        return incident
    result = derivation(incident)
    if result.value != incident.score:
        before["score"], after["score"] = incident.score, result.value
        incident.scope, incident.score = result.scope, result.value
    incident.updated_at = utcnow()
    session.add(incident)
    verb = "resolved" if after.get("resolved_at") and len(after) == 1 else "updated"
    audit.record(
        session,
        actor=actor,
        action="incident.resolve" if verb == "resolved" else "incident.update",
        subject_type="incident",
        subject_id=incident.id,
        before=before,
        after=after,
        summary=f"{verb} incident #{incident.id}: {incident.title}",
    )
    _changed(session, incident)
    return incident


def incident_stores(session: Session, incident: Incident) -> list[tuple[Store, bool]]:
    rows = session.exec(
        select(Store, IncidentStore.in_beta)
        .join(IncidentStore, col(IncidentStore.store_id) == col(Store.id))
        .where(IncidentStore.incident_id == incident.id)
        .order_by(col(Store.external_id))
    ).all()
    return [(store, bool(in_beta)) for store, in_beta in rows]


def halt_from_incident(session: Session, incident: Incident, *, actor: Actor) -> Release:
    """Halt the incident's release (one click from the incident page)."""
    if incident.release_id is None:
        raise IncidentError("this incident names no release to halt", status=409, field="release")
    release = session.get(Release, incident.release_id)
    assert release is not None
    try:
        return transition(
            session,
            release,
            "halt",
            actor=actor,
            reason=f"incident #{incident.id}: {incident.title}",
        )
    except TransitionError as exc:
        raise IncidentError(exc.message, status=exc.status) from None


def list_incidents(
    session: Session,
    *,
    app: App | None = None,
    release: Release | None = None,
    open_only: bool = False,
    limit: int = 200,
) -> list[Incident]:
    stmt = select(Incident)
    if app is not None:
        stmt = stmt.where(Incident.app_id == app.id)
    if release is not None:
        stmt = stmt.where(Incident.release_id == release.id)
    if open_only:
        stmt = stmt.where(col(Incident.resolved_at).is_(None))
    stmt = stmt.order_by(col(Incident.started_at).desc(), col(Incident.id).desc()).limit(limit)
    return list(session.exec(stmt).all())


def release_versions(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.exec(
        select(Release.id, Release.version).where(col(Release.id).in_(wanted))
    ).all()
    return {rid: version for rid, version in rows if rid is not None}


# --- trend -----------------------------------------------------------------------------


def week_start(moment: datetime) -> date:
    day = utc.aware(moment).date()
    return day - timedelta(days=day.weekday())


def incident_trend(
    session: Session, app: App, *, weeks: int = 26, now: datetime | None = None
) -> dict[str, Any]:
    """Scores summed per week (Monday, UTC) and per release for the last ``weeks`` weeks."""
    moment = utc.aware(now or utcnow())
    last = week_start(moment)
    first = last - timedelta(weeks=weeks - 1)
    since = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    incidents = session.exec(
        select(Incident)
        .where(Incident.app_id == app.id, col(Incident.started_at) >= since)
        .order_by(col(Incident.started_at), col(Incident.id))
    ).all()
    versions = release_versions(session, (i.release_id for i in incidents))
    labels = sorted({versions.get(i.release_id or 0, "") for i in incidents}, key=sort_key)
    if "" in labels:
        labels.remove("")
        labels.append("")
    table = []
    for n in range(weeks):
        start = first + timedelta(weeks=n)
        in_week = [i for i in incidents if week_start(i.started_at) == start]
        by_release: dict[str, int] = {}
        for incident in in_week:
            label = versions.get(incident.release_id or 0, "")
            by_release[label] = by_release.get(label, 0) + incident.score
        table.append(
            {
                "week_start": start,
                "total": sum(i.score for i in in_week),
                "by_release": by_release,
                "incidents": list(reversed(in_week)),
            }
        )
    return {"app": app.slug, "weeks": table, "releases": labels, "versions": versions}


# --- gates -----------------------------------------------------------------------------


@dataclass
class Gate:
    key: str
    title: str
    status: str  # passed | failed | unavailable
    evidence: str
    details: list[str] = field(default_factory=list)
    override: GateOverride | None = None

    @property
    def ok(self) -> bool:
        return self.status == "passed" or self.override is not None


def overrides_for(session: Session, release: Release) -> list[GateOverride]:
    return list(
        session.exec(
            select(GateOverride)
            .where(GateOverride.release_id == release.id)
            .order_by(col(GateOverride.id))
        ).all()
    )


def _soak_end(release: Release, now: datetime) -> datetime:
    return utc.aware(release.rollout_started_at) if release.rollout_started_at else now


def soak_gate(release: Release, app: App, now: datetime) -> Gate:
    title = GATE_TITLES["beta_soak"]
    need = app.beta_soak_days
    if release.beta_at is None:
        return Gate(
            "beta_soak", title, "unavailable", "not available yet: the release has not entered beta"
        )
    try:
        calendar = business_days.check_calendar(app.holiday_calendar)
        note = f"{calendar} holidays" if calendar != business_days.NO_HOLIDAYS else "no holidays"
    except business_days.UnknownCalendar as exc:
        calendar, note = business_days.NO_HOLIDAYS, f"weekends only: {exc}"
    tz = app.train_timezone or "UTC"
    start = business_days.local_date(release.beta_at, tz)
    end = business_days.local_date(_soak_end(release, now), tz)
    days = business_days.business_days_between(start, end, calendar)
    complete = business_days.add_business_days(start, need, calendar)
    skipped = business_days.skipped_days(start, min(end, complete), calendar)
    details = [f"{d.isoformat()} not counted: {why}" for d, why in skipped if why != "weekend"]
    weekends = sum(1 for _, why in skipped if why == "weekend")
    if weekends:
        details.insert(0, f"{weekends} weekend day{'s' if weekends > 1 else ''} not counted")
    status = "passed" if days >= need else "failed"
    evidence = (
        f"{days} of {need} business day{'s' if need != 1 else ''} since beta started on "
        f"{start.isoformat()} ({tz}, {note}); "
        + ("soak complete" if status == "passed" else f"complete on {complete.isoformat()}")
    )
    return Gate("beta_soak", title, status, evidence, details)


def adoption_gate(session: Session, release: Release, app: App) -> Gate:
    title = GATE_TITLES["beta_adoption"]
    value, evidence = beta_adoption_for_checklist(session, release)
    if value is None:
        return Gate("beta_adoption", title, "unavailable", evidence)
    target = app.beta_adoption_target
    status = "passed" if value * 100 >= target else "failed"
    return Gate(
        "beta_adoption",
        title,
        status,
        f"{value * 100:.1f} % of beta devices (target {target:g} %); {evidence}",
    )


def beta_incidents(session: Session, release: Release) -> list[Incident]:
    """Incidents of this release that touched beta stores during the soak."""
    if release.beta_at is None:
        return []
    stmt = select(Incident).where(
        Incident.release_id == release.id,
        col(Incident.beta_store_count) > 0,
        col(Incident.started_at) >= utc.aware(release.beta_at),
    )
    if release.rollout_started_at is not None:
        stmt = stmt.where(col(Incident.started_at) < utc.aware(release.rollout_started_at))
    return list(session.exec(stmt.order_by(col(Incident.started_at))).all())


def incident_gate(session: Session, release: Release, app: App) -> Gate:
    title = GATE_TITLES["incident_score"]
    threshold = app.incident_score_threshold
    if release.beta_at is None:
        return Gate(
            "incident_score",
            title,
            "unavailable",
            "not available yet: the release has not entered beta",
        )
    found = beta_incidents(session, release)
    blocking = [i for i in found if i.score >= threshold and i.resolved_at is None]
    details = [
        f"#{i.id} {i.title}: score {i.score} (impact {i.impact} × scope {i.scope}), "
        f"{i.beta_store_count} beta store{'s' if i.beta_store_count != 1 else ''}, "
        + ("resolved" if i.resolved_at else "unresolved")
        + (" — blocking" if i in blocking else "")
        for i in found
    ]
    if blocking:
        names = ", ".join(f"#{i.id} (score {i.score})" for i in blocking)
        return Gate(
            "incident_score",
            title,
            "failed",
            f"{len(blocking)} unresolved beta incident{'s' if len(blocking) > 1 else ''} with a "
            f"score ≥ {threshold}: {names}",
            details,
        )
    others = f"; {len(found)} other beta incident(s) below {threshold} or resolved" if found else ""
    return Gate(
        "incident_score",
        title,
        "passed",
        f"no unresolved beta incident with a score ≥ {threshold} since beta started{others}",
        details,
    )


def evaluate_gates(
    session: Session, release: Release, *, now: datetime | None = None
) -> list[Gate]:
    """The three promotion gates of ``release`` with any admin override applied."""
    app = session.get(App, release.app_id)
    assert app is not None
    moment = utc.aware(now or utcnow())
    gates = [
        soak_gate(release, app, moment),
        adoption_gate(session, release, app),
        incident_gate(session, release, app),
    ]
    latest = {o.gate: o for o in overrides_for(session, release)}
    for gate in gates:
        if gate.status != "passed":
            gate.override = latest.get(gate.key)
    return gates


def promotion_guard(session: Session, release: Release, actor: Actor) -> None:
    """``promote`` guard: refuse while a gate fails (for apps with promotion gates on)."""
    app = session.get(App, release.app_id)
    if app is None or not app.promotion_gates:
        return
    failing = [g for g in evaluate_gates(session, release) if not g.ok]
    if failing:
        reasons = "; ".join(f"{g.title}: {g.evidence}" for g in failing)
        raise TransitionError(
            f"{len(failing)} promotion gate{'s' if len(failing) > 1 else ''} not met — {reasons}. "
            "Resolve them, or an admin may override a gate with a reason on the release page."
        )


def override_gate(
    session: Session, *, release: Release, gate: str, reason: str, actor: Actor
) -> GateOverride:
    """An admin lets a failing gate pass for this release; audited and highlighted."""
    if actor.role != "admin":
        raise IncidentError("only an admin may override a promotion gate", status=403)
    if gate not in GATES:
        raise IncidentError(f"gate must be one of {', '.join(GATES)}", field="gate")
    if release.state not in OVERRIDE_STATES:
        raise IncidentError(
            "gates are decided before the rollout; the release is "
            + release.state.replace("_", " "),
            status=409,
        )
    reason = reason.strip()
    if not reason:
        raise IncidentError("an override needs a reason", field="reason")
    current = next(g for g in evaluate_gates(session, release) if g.key == gate)
    row = GateOverride(
        release_id=release.id or 0, gate=gate, reason=reason[:2000], actor=actor.name
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor.name,
        action="gate.override",
        subject_type="release",
        subject_id=release.id,
        before={"gate": gate, "status": current.status, "evidence": current.evidence},
        after={"gate": gate, "reason": reason},
        summary=f"OVERRIDE gate “{GATE_TITLES[gate]}”: {reason}",
        highlight=True,
    )
    return row


# --- checklist evaluators (automatic items) --------------------------------------------


def _checklist(gate_key: str, session: Session, release: Release) -> tuple[str, str, list[str]]:
    gate = next(g for g in evaluate_gates(session, release) if g.key == gate_key)
    if gate.override is not None:
        o = gate.override
        return (
            "passed",
            f"OVERRIDDEN by {o.actor} on {utc.aware(o.at):%Y-%m-%d %H:%M} UTC: {o.reason} "
            f"(evaluated: {gate.evidence})",
            gate.details,
        )
    return gate.status, gate.evidence, gate.details


def beta_soak_rule(session: Session, release: Release, app: App) -> tuple[str, str, list[str]]:
    return _checklist("beta_soak", session, release)


def incident_score_rule(session: Session, release: Release, app: App) -> tuple[str, str, list[str]]:
    return _checklist("incident_score", session, release)


def beta_adoption_rule(session: Session, release: Release, app: App) -> tuple[str, str, list[str]]:
    return _checklist("beta_adoption", session, release)
