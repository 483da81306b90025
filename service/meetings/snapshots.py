"""What the meeting sees of a release, as plain JSON: frozen when the meeting opens (and when
a decision is taken), so a past week reads back as it was, not as things are today.

:func:`take` builds it from the live data; :func:`assess` reads one (live or frozen) and
says what stands out: a halted release, an open incident and its score, a failing gate, a
blocking checklist item. Nothing is green unless nothing is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, or_, select

import utc
from service import timezones
from service.adoption.services import version_share
from service.incidents.models import Incident
from service.incidents.services import evaluate_gates
from service.models import ROLE_LABELS, User
from service.releases.checklist import ItemStatus, item_statuses, progress
from service.releases.models import App, Release
from service.releases.notes import previous_release

SNAPSHOT_VERSION = 1
BAD_ITEM = ("rejected", "blocked", "failed")


def people_by_role(session: Session) -> dict[str, list[str]]:
    """The names of the active people holding each role (who can sign a role's items)."""
    found: dict[str, list[str]] = {}
    for user in session.exec(
        select(User).where(User.active == True).order_by(col(User.name))  # noqa: E712
    ).all():
        found.setdefault(user.role, []).append(user.name or user.email)
    return found


def _iso(moment: datetime | None) -> str | None:
    return utc.aware(moment).isoformat() if moment else None


def _item(status: ItemStatus, people: Mapping[str, list[str]]) -> dict[str, Any]:
    manual = [s for s in status.history if not s.override]
    latest = manual[-1] if manual else None
    waiting = (
        people.get(status.item.owner_role, [])
        if status.item.mode == "manual" and status.status == "pending"
        else []
    )
    return {
        "id": status.item.id,
        "title": status.item.title,
        "owner_role": status.item.owner_role,
        "required": status.item.required,
        "mode": status.item.mode,
        "status": status.status,
        "ok": status.ok,
        "blocking": status.blocking,
        "evidence": status.evidence,
        "signed": (
            {
                "by": latest.user_email,
                "role": latest.role,
                "decision": latest.decision,
                "comment": latest.comment,
                "at": _iso(latest.at),
            }
            if latest
            else None
        ),
        "override": (
            {
                "by": status.overridden.user_email,
                "reason": status.overridden.comment,
                "at": _iso(status.overridden.at),
            }
            if status.overridden
            else None
        ),
        "waiting_for": waiting,
    }


def _open_incidents(session: Session, release: Release, now: datetime) -> list[Incident]:
    return list(
        session.exec(
            select(Incident)
            .where(
                Incident.release_id == release.id,
                col(Incident.started_at) <= now,
                or_(col(Incident.resolved_at).is_(None), col(Incident.resolved_at) > now),
            )
            .order_by(col(Incident.score).desc(), col(Incident.id))
        ).all()
    )


def previous_adoption(
    session: Session, release: Release, app: App, now: datetime
) -> dict[str, Any]:
    """The release before ``release`` that reached the stores, and how many of the app's
    devices ran it on ``now``'s day (from the daily rollups)."""
    previous = previous_release(session, app, release.version)
    if previous is None:
        return {"version": None, "note": "no earlier release reached the stores"}
    day = timezones.local(now, app.train_timezone).date()
    found = version_share(session, app, previous.version, on=day)
    if found is None:
        return {
            "version": previous.version,
            "note": "not available yet: no adoption rollup for that day",
        }
    return {
        "version": previous.version,
        "day": found.day.isoformat(),
        "devices": found.devices,
        "on_version": found.on_version,
        "share": round(found.share, 4),
        "share_or_newer": round(found.share_or_newer, 4),
    }


def take(
    session: Session,
    release: Release,
    app: App,
    *,
    now: datetime | None = None,
    people: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The release as the meeting sees it at ``now``: state, checklist with who signed and
    who still has to, promotion gates, open incidents, and how far the previous release
    spread."""
    moment = utc.aware(now or utc.now())
    people = people if people is not None else people_by_role(session)
    statuses = item_statuses(session, release)
    prog = progress(statuses)
    items = [_item(s, people) for s in statuses]
    # Who still has to sign for the release to pass: the people of each role that owns a
    # required manual item nobody has signed yet.
    waiting: dict[str, list[str]] = {}
    for item in items:
        if item["blocking"] and item["mode"] == "manual" and item["status"] == "pending":
            waiting.setdefault(item["owner_role"], people.get(item["owner_role"], []))
    gates = []
    if release.beta_at is not None:
        for gate in evaluate_gates(session, release, now=moment):
            gates.append(
                {
                    "key": gate.key,
                    "title": gate.title,
                    "status": gate.status,
                    "evidence": gate.evidence,
                    "override": (
                        {"by": gate.override.actor, "reason": gate.override.reason}
                        if gate.override
                        else None
                    ),
                }
            )
    incidents = [
        {
            "id": i.id,
            "title": i.title,
            "score": i.score,
            "impact": i.impact,
            "scope": i.scope,
            "started_at": _iso(i.started_at),
        }
        for i in _open_incidents(session, release, moment)
    ]
    return {
        "v": SNAPSHOT_VERSION,
        "taken_at": moment.isoformat(),
        "release_id": release.id,
        "app": app.slug,
        "app_name": app.name,
        "zone": app.train_timezone,
        "version": release.version,
        "kind": release.kind,
        "state": release.state,
        "halted_from": release.halted_from,
        "lock_version": release.lock_version,
        "scheduled_for": _iso(release.scheduled_for),
        "range": f"{release.from_ref or 'root'}...{release.git_ref}",
        "approved_by": release.approved_by,
        "checklist": {
            "done": prog.done,
            "total": prog.total,
            "required": prog.required,
            "required_done": prog.required_done,
            "percent": prog.percent,
        },
        "items": items,
        "waiting": [
            {"role": role, "label": ROLE_LABELS.get(role, role), "people": names}
            for role, names in sorted(waiting.items())
        ],
        "gates": gates,
        "incidents": incidents,
        "incident_threshold": app.incident_score_threshold,
        "previous": previous_adoption(session, release, app, moment),
    }


@dataclass
class Assessment:
    """What stands out in a snapshot: ``level`` is ``bad``, ``warn`` or ``good``."""

    level: str
    lines: list[tuple[str, str]] = field(default_factory=list)  # (level, text)

    @property
    def summary(self) -> str:
        return self.lines[0][1] if self.lines else "nothing blocks"


def assess(snapshot: Mapping[str, Any]) -> Assessment:
    """Every trouble a snapshot shows, worst first; ``good`` only when there is none."""
    lines: list[tuple[str, str]] = []
    state = snapshot.get("state", "")
    if state == "halted":
        source = (snapshot.get("halted_from") or "").replace("_", " ")
        lines.append(("bad", "halted" + (f" (from {source})" if source else "")))
    elif state in ("rejected", "cancelled"):
        lines.append(("bad", state))
    threshold = int(snapshot.get("incident_threshold") or 0)
    for incident in snapshot.get("incidents", []):
        level = "bad" if threshold and incident["score"] >= threshold else "warn"
        lines.append(
            (
                level,
                f"open incident #{incident['id']} score {incident['score']}: {incident['title']}",
            )
        )
    for gate in snapshot.get("gates", []):
        if gate["status"] == "passed":
            continue
        if gate.get("override"):
            lines.append(("warn", f"gate {gate['title']} overridden by {gate['override']['by']}"))
        elif gate["status"] == "failed":
            lines.append(("bad", f"gate {gate['title']} failing: {gate['evidence']}"))
        elif state in ("beta", "halted"):
            lines.append(("warn", f"gate {gate['title']}: {gate['evidence']}"))
    for item in snapshot.get("items", []):
        if item.get("override"):
            lines.append(("warn", f"“{item['title']}” overridden by {item['override']['by']}"))
        if not item.get("blocking"):
            continue
        if item["status"] in BAD_ITEM:
            lines.append(("bad", f"“{item['title']}” {item['status']}"))
        else:
            shown = "not available yet" if item["status"] == "unavailable" else item["status"]
            lines.append(("warn", f"“{item['title']}” {shown}"))
    lines.sort(key=lambda line: 0 if line[0] == "bad" else 1)
    if not lines:
        return Assessment("good", [("good", "nothing blocks")])
    return Assessment(lines[0][0], lines)


def changed_since(
    snapshot: Mapping[str, Any], release: Release, *, lock_version: int | None = None
) -> str | None:
    """How the live release differs from its snapshot (its state or any transition);
    ``lock_version``: the release's after the decision took it (its own move is no change)."""
    expected = lock_version if lock_version is not None else snapshot.get("lock_version")
    if not snapshot or expected == release.lock_version:
        return None
    was = str(snapshot.get("state", "")).replace("_", " ")
    now = release.state.replace("_", " ")
    return f"now {now}" + (f" (was {was})" if was != now else "")


def troubles(snapshots: Iterable[Mapping[str, Any]]) -> int:
    return sum(1 for s in snapshots if assess(s).level == "bad")
