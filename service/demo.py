"""``relgov demo``: a lived-in service for ``make run``: people of every role, then each
feature's own demo data."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import func
from sqlmodel import Session, select

from service import db
from service.adoption import demo as adoption_demo
from service.auth import create_user
from service.beta import demo as beta_demo
from service.incidents import demo as incidents_demo
from service.meetings import demo as meetings_demo
from service.models import User
from service.notifications import outbox
from service.notifications.models import Notification
from service.releases import demo as releases_demo
from service.search import demo as search_demo

DEMO_PASSWORD = "demo-password"
DEMO_ADMIN = ("admin@example.com", "demo-admin-password")  # printed by `relgov run`
PEOPLE = [
    (DEMO_ADMIN[0], "Aiko Admin", "admin", DEMO_ADMIN[1]),
    ("rm@example.com", "Ren Release-Manager", "release_manager", DEMO_PASSWORD),
    ("rm2@example.com", "Rina Release-Manager", "release_manager", DEMO_PASSWORD),
    ("eng@example.com", "Kenji Engineer", "engineer", DEMO_PASSWORD),
    ("qa@example.com", "Quinn QA", "qa", DEMO_PASSWORD),
    ("support@example.com", "Sato Support", "support", DEMO_PASSWORD),
    ("viewer@example.com", "Vera Viewer", "viewer", DEMO_PASSWORD),
]
ACTOR = "system:demo"


def seed_people(session: Session) -> list[str]:
    lines = []
    for email, name, role, password in PEOPLE:
        if session.exec(select(User).where(User.email == email)).first() is None:
            create_user(
                session=session, email=email, name=name, role=role, password=password, actor=ACTOR
            )
            lines.append(f"  {role:16} {email:24} password: {password}")
    return lines


# Each feature seeds its own demo data, in this order: seed(session) -> report lines. The
# meetings come after incidents: they read the adoption and incidents of the weeks they were
# held in; the search index comes last: it indexes what the others made.
DEMO_HISTORY = "Demo history: recorded as it would have gone, never sent"

SEEDERS = (
    releases_demo.seed,
    beta_demo.seed,
    adoption_demo.seed,
    incidents_demo.seed,
    meetings_demo.seed,
    search_demo.seed,
)


def seed_demo(app: Flask) -> list[str]:
    report = ["demo people:"]
    with app.app_context():
        with db.session_scope() as session:
            report += seed_people(session)
        for seed in SEEDERS:
            with db.session_scope() as session:
                report += seed(session)
        with db.session_scope() as session:
            # The demo's past is history: with Slack configured, none of the messages its
            # approvals, halts, incidents and meetings recorded is sent.
            outbox.never_send(session, reason=DEMO_HISTORY)
            kept = session.exec(select(func.count()).select_from(Notification)).one()
        report.append(f"demo Slack messages kept unsent (history): {kept}")
    return report
