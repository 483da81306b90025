"""The texts of the Slack messages (Slack's ``mrkdwn``), and who a person is on Slack.

Text that people typed (reasons, titles, names, errors) is escaped as Slack asks (``&``,
``<``, ``>``), so a reason holding ``<!channel>`` or a link cannot ping a channel or hide a
link. A person with a Slack member id is mentioned (``<@U0123>``); anyone else is named in
plain text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from service.models import User
from service.notifications.models import SlackUser


def escape(text: str) -> str:
    """Slack's escaping of the three control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str, label: str) -> str:
    return f"<{url}|{escape(label).replace('|', '¦')}>"


@dataclass(frozen=True)
class Person:
    email: str
    name: str
    slack_user_id: str | None

    @property
    def mention(self) -> str:
        return f"<@{self.slack_user_id}>" if self.slack_user_id else escape(self.name)


def slack_ids(session: Session, emails: Sequence[str]) -> dict[str, str]:
    """email (lower-case) → Slack member id, for those mapped."""
    wanted = sorted({e.lower() for e in emails if e})
    if not wanted:
        return {}
    rows = session.exec(select(SlackUser).where(col(SlackUser.email).in_(wanted))).all()
    return {row.email: row.slack_user_id for row in rows}


def person_of(session: Session, actor: str) -> Person:
    """Who an audit actor is: ``user:<email>`` is a person (mentioned when mapped); a token,
    the CLI or the system is named as it is."""
    kind, _, rest = actor.partition(":")
    if kind != "user" or "@" not in rest:
        return Person(email="", name=actor, slack_user_id=None)
    email = rest.lower()
    user = session.exec(select(User).where(col(User.email) == email)).first()
    name = user.name if user is not None and user.name else email
    return Person(email=email, name=name, slack_user_id=slack_ids(session, [email]).get(email))


def people_of(session: Session, users: Sequence[User]) -> list[Person]:
    ids = slack_ids(session, [u.email for u in users])
    return [
        Person(
            email=u.email.lower(), name=u.name or u.email, slack_user_id=ids.get(u.email.lower())
        )
        for u in users
    ]


def release_title(app_name: str, version: str) -> str:
    return f"*{escape(app_name)} {escape(version)}*"


def approved(app_name: str, version: str, by: Person, url: str) -> str:
    return (
        f":white_check_mark: {release_title(app_name, version)} was approved by {by.mention}. "
        f"{link(url, 'Open the release')}"
    )


def rejected(app_name: str, version: str, by: Person, reason: str, url: str) -> str:
    return (
        f":x: {release_title(app_name, version)} was rejected by {by.mention}: "
        f"{escape(reason)}. {link(url, 'Open the release')}"
    )


def halted(
    app_name: str, version: str, by: Person, reason: str, where: str, percent: int, url: str
) -> str:
    stage = f" at {percent} % of stores" if where == "rolling_out" and percent else ""
    phase = "the staged rollout" if where == "rolling_out" else "the beta"
    return (
        f":octagonal_sign: {release_title(app_name, version)} was halted in {phase}{stage} by "
        f"{by.mention}: {escape(reason)}. Stores get no new update of it until it is resumed. "
        f"{link(url, 'Open the release')}"
    )


def incident(
    number: int,
    app_name: str,
    version: str | None,
    title: str,
    score: int,
    derivation: str,
    threshold: int,
    by: Person,
    url: str,
) -> str:
    release = f" {escape(version)}" if version else ""
    return (
        f":rotating_light: Incident #{number} on *{escape(app_name)}{release}*, score {score} "
        f"({escape(derivation)}; announced from {threshold}): {escape(title)}. "
        f"Recorded by {by.mention}. {link(url, 'Open the incident')}"
    )


def publish_failed(app_name: str, version: str, error: str, url: str) -> str:
    return (
        f":warning: Publishing the notes of {release_title(app_name, version)} to Notion "
        f"failed: {escape(error[:500])}. Support will not find them in Notion until it is "
        f"published. {link(url, 'Open the release')}"
    )


@dataclass(frozen=True)
class PendingRelease:
    app_name: str
    version: str
    url: str
    items: tuple[str, ...]


def reminder(
    who: Person,
    meeting_local: str,
    hours: float,
    releases: Sequence[PendingRelease],
    meeting_url: str | None = None,
) -> str:
    lines = [
        f":alarm_clock: {who.mention}, the release meeting is {_in(hours)} "
        f"({escape(meeting_local)}). Your sign-off is still missing on:"
    ]
    for release in releases:
        items = "; ".join(escape(i) for i in release.items)
        lines.append(f"• {link(release.url, f'{release.app_name} {release.version}')}: {items}")
    if meeting_url:
        lines.append(link(meeting_url, "Open the meeting"))
    return "\n".join(lines)


def _in(hours: float) -> str:
    if hours >= 1.5:
        return f"in {round(hours)} hours"
    minutes = max(1, round(hours * 60))
    return f"in {minutes} minutes"


@dataclass(frozen=True)
class StragglerLine:
    name: str
    store_id: str
    oldest_version: str
    last_seen: datetime
    below_minimum: bool


def digest(
    app_name: str,
    week: str,
    total: int,
    minimum: str | None,
    behind: str | None,
    stores: Sequence[StragglerLine],
    url: str,
) -> str:
    rule = []
    if minimum:
        rule.append(f"below the minimum supported {escape(minimum)}")
    if behind:
        rule.append(f"older than {escape(behind)}")
    why = " or ".join(rule) or "behind the released versions"
    lines = [
        f":turtle: Weekly straggler digest for *{escape(app_name)}* ({escape(week)}): "
        f"{total} store{'s' if total != 1 else ''} with a device {why}."
    ]
    for store in stores:
        flag = " (below minimum)" if store.below_minimum else ""
        lines.append(
            f"• {escape(store.name)} ({escape(store.store_id)}): "
            f"{escape(store.oldest_version)}{flag}, last seen {store.last_seen:%Y-%m-%d %H:%M} UTC"
        )
    if total > len(stores):
        lines.append(f"…and {total - len(stores)} more.")
    lines.append(link(url, "Open the stragglers report"))
    return "\n".join(lines)
