"""The demo seeded where Slack is configured posts nothing: its approvals, halts, incidents and
meetings are history, recorded as they would have gone."""

from __future__ import annotations

from flask import Flask
from sqlmodel import Session, select

from service.demo import seed_demo
from service.notifications.models import Notification
from tests.builders import run_jobs
from tests.fakes.slack_fake import SlackFake


def test_the_demo_sends_nothing_to_a_configured_slack(
    app: Flask, session: Session, slack: SlackFake
) -> None:
    report = "\n".join(seed_demo(app))
    messages = session.exec(select(Notification)).all()
    assert messages, "the demo records the messages its history would have sent"
    assert {m.state for m in messages} == {"not_configured"}
    assert "kept unsent" in report
    run_jobs(app)
    assert slack.posted == []
