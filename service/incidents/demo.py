"""Demo incidents for ``make run``: a few per app across the last weeks, one open incident at
beta stores on the POS release in beta, with POS's promotion gates switched on so that it
blocks the promotion until it is resolved or an admin overrides the gate."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, select

import utc
from beta.models import Store
from service.incidents import services
from service.incidents.models import Incident
from service.models import utcnow
from service.releases.apps import update_app_record
from service.releases.models import App, Release

ACTOR = "system:demo"


def _release(session: Session, app: App, state: str) -> Release | None:
    rows = session.exec(
        select(Release).where(Release.app_id == app.id, Release.state == state)
    ).all()
    return max(rows, key=lambda r: r.created_at, default=None)


def _at(base: datetime | None, offset: timedelta, fallback: timedelta) -> datetime:
    now = utcnow()
    moment = (utc.aware(base) + offset) if base else now - fallback
    return min(moment, now - timedelta(minutes=30))


def seed(session: Session) -> list[str]:
    if session.exec(select(Incident)).first() is not None:
        return []
    apps = {a.slug: a for a in session.exec(select(App)).all()}
    beta_ids = [
        s.external_id
        for s in session.exec(select(Store).where(Store.in_beta == True)).all()  # noqa: E712
    ]
    others = [
        s.external_id
        for s in session.exec(
            select(Store).where(Store.in_beta == False).order_by(Store.external_id).limit(12)  # noqa: E712
        ).all()
    ]
    if not apps or not beta_ids:
        return ["incidents: skipped (no apps or no beta stores)"]
    made: list[Incident] = []

    def add(app: App, release: Release | None, **values: object) -> None:
        made.append(
            services.record_incident(
                session,
                thresholds=services.scope_thresholds(),
                app=app,
                actor=ACTOR,
                release=release,
                suggest=False,
                **values,  # type: ignore[arg-type]
            )
        )

    pos = apps.get("pos")
    if pos is not None:
        in_beta = _release(session, pos, "beta")
        rolling = _release(session, pos, "rolling_out")
        released = _release(session, pos, "released")
        if released is not None:
            add(
                pos,
                released,
                title="Split bill rounds the last share up by 1 yen",
                impact=3,
                stores=others[:4],
                started_at=_at(
                    released.released_at, timedelta(days=1, hours=3), timedelta(days=40)
                ),
                resolved_at=_at(released.released_at, timedelta(days=2), timedelta(days=39)),
                postmortem_url="https://notion.example.com/postmortems/split-bill-rounding",
            )
        add(
            pos,
            None,
            title="Card payments declined during the payment gateway outage",
            impact=5,
            store_count=40,
            beta_store_count=2,
            started_at=utcnow() - timedelta(days=24, hours=5),
            resolved_at=utcnow() - timedelta(days=24, hours=4),
            postmortem_url="https://notion.example.com/postmortems/gateway-outage",
        )
        if rolling is not None:
            add(
                pos,
                rolling,
                title="Table map loads slowly during the lunch peak",
                impact=1,
                store_count=180,
                beta_store_count=3,
                started_at=_at(rolling.rollout_started_at, timedelta(hours=20), timedelta(days=9)),
                resolved_at=_at(
                    rolling.rollout_started_at, timedelta(days=1, hours=2), timedelta(days=8)
                ),
            )
        if in_beta is not None:
            add(
                pos,
                in_beta,
                title="Kitchen tickets print twice after the printer reconnects",
                impact=5,
                stores=beta_ids[:2],
                started_at=_at(in_beta.beta_at, timedelta(hours=5), timedelta(hours=6)),
            )
            # A beta-only incident is scope 1 (a beta cohort is "a few stores"), so it
            # scores at most 5: the demo gates on 5 to show a blocked promotion.
            update_app_record(
                session, app=pos, actor=ACTOR, promotion_gates=True, incident_score_threshold=5
            )
    handy = apps.get("handy")
    if handy is not None:
        halted = _release(session, handy, "halted")
        if halted is not None:
            add(
                handy,
                halted,
                title="Card payments at the table time out on older handhelds",
                impact=3,
                store_count=200,
                beta_store_count=8,
                started_at=_at(
                    halted.rollout_started_at or halted.beta_at,
                    timedelta(hours=6),
                    timedelta(days=12),
                ),
            )
    kds = apps.get("kds")
    if kds is not None:
        released = _release(session, kds, "released")
        add(
            kds,
            released,
            title="Bump bar ignores a second press within a second",
            impact=1,
            stores=others[4:6],
            started_at=utcnow() - timedelta(days=60),
            resolved_at=utcnow() - timedelta(days=58),
        )
    lines = ["incidents:"]
    for incident in made:
        lines.append(
            f"  #{incident.id} score {incident.score:2} {incident.title}"
            + ("" if incident.resolved_at else " (open)")
        )
    return lines
