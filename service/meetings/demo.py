"""Demo meetings for ``make run``: the weeks the releases demo decided in, made lived-in.

The releases demo (``service/releases/demo.py``) opened a meeting for each past week and
decided every release in it at the time it was held (go, go with conditions, a no-go, a
defer, a go after an admin's override). This seeder runs last and, for each of those
meetings: records who attended and the minutes, creates action items (some closed a few
days later, some still open and overdue), and closes it an hour after its last decision.
This week's meeting is left for you to open.

One fix-up, because adoption is simulated after the releases exist: the snapshots' "previous
release" adoption is read again from the daily rollups of the day each snapshot was taken
(the same function the snapshot uses).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import Session, col, select

import utc
from service.meetings import services, snapshots
from service.meetings.models import ActionItem, Meeting, MeetingDecision, MeetingItem
from service.meetings.weeks import parse_week
from service.models import User, utcnow
from service.releases.models import App, Release

ATTENDEES = ["rm@example.com", "eng@example.com", "qa@example.com", "support@example.com"]
# Keyed by how many weeks before this one the meeting was held (1: last week).
GUESTS = {5: ["Tanaka (owner, Sakura Ramen Shibuya)"], 2: ["Mori (payments partner)"]}
MINUTES = {
    7: "Walked the checklist per train. Support confirmed the store-facing notes are in the "
    "FAQ draft. No open incident on the previous release.",
    6: "Only POS this week. Agreed to add the printer-reconnect case QA found by hand to the "
    "regression suite.",
    5: "The store owner joined for the receipt change: the sample receipt goes to the beta "
    "stores a day before the train (condition of the go). Thursday: hotfix 3.12.1 decided on "
    "the day, zero tips were refused at checkout.",
    4: "First handheld train on the weekly rhythm. Nothing blocks.",
    3: "The bump-bar rig is broken: QA blocked its item, the admin's override is on record "
    "(manual run on a spare unit). Kitchen display goes with a halt condition.",
    2: "The payments partner walked through the table-payment rewrite: go with a halt "
    "condition for older handhelds. Kitchen display 1.9.0 is a no-go (duplicate tickets "
    "after a printer reconnect).",
    1: "Kitchen display 1.10.0 deferred: the owners have not confirmed the allergy colour. "
    "Handheld 2.6.0 was halted after the payment timeouts (incident score 9); postmortem "
    "owed. Two action items are overdue.",
}
# (title, owner, due in days after the meeting, closed after days or None: still open).
ACTIONS: dict[int, list[tuple[str, str, int, int | None]]] = {
    6: [("Add a printer-reconnect case to the regression suite", "qa@example.com", 14, 12)],
    5: [
        ("Send the new receipt sample to the beta stores", "support@example.com", 1, 1),
        ("Write down how a hotfix is decided between meetings", "rm@example.com", 7, 6),
    ],
    3: [("Repair the bump-bar rig in the device lab", "eng@example.com", 10, 9)],
    2: [
        ("Postmortem: table payments time out on older handhelds", "eng@example.com", 5, None),
        ("Fix duplicate kitchen tickets after a printer reconnect", "eng@example.com", 7, None),
    ],
    1: [
        (
            "Ask three restaurant owners to confirm the allergy colour",
            "support@example.com",
            4,
            None,
        ),
        ("List the stores still on handheld 2.5.0", "support@example.com", 14, None),
    ],
}
CLOSE_NOTES = ["done", "merged as #412", "repaired, back in the lab", "sent to all 15 stores"]


def seed(session: Session) -> list[str]:
    meetings = list(
        session.exec(
            select(Meeting).where(Meeting.state == "open").order_by(col(Meeting.week_start))
        ).all()
    )
    now = utcnow()
    this_week = services.current_week(session, now=now)
    past = [m for m in meetings if parse_week(m.week) < this_week]
    if not past:
        return ["meetings: nothing to fill (no past meeting)"]
    people = {u.email: u for u in session.exec(select(User)).all()}
    rm = people.get("rm@example.com") or next(u for u in people.values() if u.role == "admin")
    lines = ["meetings:"]
    closings: list[tuple[datetime, int, User]] = []
    for meeting in past:
        ago = (this_week.monday - meeting.week_start).days // 7
        opened = utc.aware(meeting.opened_at)
        _refresh_adoption(session, meeting)
        services.set_attendees(
            session,
            meeting=meeting,
            user=rm,
            people=[e for e in ATTENDEES if e in people],
            guests=GUESTS.get(ago, []),
        )
        services.save_minutes(
            session,
            meeting=meeting,
            user=rm,
            minutes=MINUTES.get(ago, MINUTES[7]),
            revision=meeting.minutes_revision,
        )
        for title, owner, due, closed_after in ACTIONS.get(ago, []):
            if owner not in people:
                continue
            item = services.add_action_item(
                session,
                meeting=meeting,
                user=rm,
                title=title,
                owner=owner,
                due_on=(opened + timedelta(days=due)).date(),
                now=opened + timedelta(minutes=40),
            )
            if closed_after is not None:
                closings.append(
                    (opened + timedelta(days=closed_after), item.id or 0, people[owner])
                )
        last = session.exec(
            select(MeetingDecision.at)
            .where(MeetingDecision.meeting_id == meeting.id)
            .order_by(col(MeetingDecision.at).desc())
        ).first()
        closed_at = max(opened + timedelta(hours=1), utc.aware(last) if last else opened)
        services.close_meeting(
            session, meeting=meeting, user=rm, now=min(closed_at + timedelta(hours=1), now)
        )
        decided = session.exec(
            select(MeetingDecision).where(MeetingDecision.meeting_id == meeting.id)
        ).all()
        lines.append(
            f"  {meeting.week}: {len(decided)} decision(s) "
            f"({', '.join(sorted({d.decision for d in decided}))}), "
            f"{len(ACTIONS.get(ago, []))} action item(s), closed"
        )
    for n, (at, item_id, closer) in enumerate(sorted(closings, key=lambda c: c[0])):
        done = session.get(ActionItem, item_id)
        if done is not None and at < now:
            services.close_action_item(
                session, item=done, user=closer, note=CLOSE_NOTES[n % len(CLOSE_NOTES)], now=at
            )
    session.flush()
    return lines


def _refresh_adoption(session: Session, meeting: Meeting) -> None:
    """Read the previous release's adoption again now that the rollups exist (see above)."""
    apps = {a.id: a for a in session.exec(select(App)).all()}
    rows: list[MeetingItem | MeetingDecision] = [
        *session.exec(select(MeetingItem).where(MeetingItem.meeting_id == meeting.id)).all(),
        *session.exec(
            select(MeetingDecision).where(MeetingDecision.meeting_id == meeting.id)
        ).all(),
    ]
    for row in rows:
        release = session.get(Release, row.release_id)
        if release is None or not row.snapshot.get("taken_at"):
            continue
        taken = datetime.fromisoformat(row.snapshot["taken_at"])
        row.snapshot["previous"] = snapshots.previous_adoption(
            session, release, apps[release.app_id], taken
        )
        flag_modified(row, "snapshot")
        session.add(row)
