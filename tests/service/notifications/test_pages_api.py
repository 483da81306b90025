"""Pages and API: what was sent (or would have been), each app's channel, who is who on
Slack; and the service without Slack configured."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlmodel import select

from service.app import create_app
from service.models import AuditEvent
from service.notifications import events
from service.notifications.models import AppChannel, SlackUser
from service.settings import Settings, SettingsError
from tests import builders
from tests.service.notifications.conftest import make_app, make_release, messages, move, run_due


@pytest.fixture
def unconfigured(settings):
    return replace(settings, slack_bot_token="", slack_webhook_url="", slack_default_channel="")


def test_without_slack_messages_are_kept_with_where_they_would_go(unconfigured, session, people):
    plain = create_app(unconfigured)
    with plain.app_context():
        app = make_app(session, channel="#pos-releases")
        release = make_release(session, app)
        move(session, release, "submit", "approve")
    (row,) = messages(session)
    assert row.state == "not_configured" and row.via == "none"
    assert row.destination == "would go to #pos-releases; Slack is not configured"
    assert "set SLACK_BOT_TOKEN" in row.last_error
    assert "approved by Rita Manager" in row.text
    assert run_due(plain) == []  # no job: nothing to send
    client = plain.test_client()
    builders.login(client, "eng@example.com")
    html = client.get("/notifications").get_data(as_text=True)
    assert "Slack is not configured." in html and "<code>SLACK_BOT_TOKEN</code>" in html
    assert "would go to #pos-releases; Slack is not configured" in html
    assert 'data-state="not_configured"' in html and "Not configured" in html
    assert "<strong>POS register 3.12.0</strong> was approved by Rita Manager" in html
    release_page = client.get(f"/releases/{release.id}").get_data(as_text=True)
    assert "Slack is not configured:" in release_page
    assert "they would go to #pos-releases; Slack is not configured." in release_page
    plain.extensions["relgov.engine"].dispose()


def test_the_page_lists_messages_with_state_destination_and_text(app, client, session, people):
    with app.app_context():
        a = make_app(session, channel="#pos-releases")
        move(session, make_release(session, a), "submit", "approve")
    builders.login(client, "qa@example.com")
    html = client.get("/notifications?state=queued&event=approved&app=pos").get_data(as_text=True)
    assert "#pos-releases (chat.postMessage)" in html and "Queued" in html
    assert '<a href="https://relgov.example.com/releases/' in html
    assert "Send again" not in html  # admins only, and nothing failed
    html = client.get("/notifications?state=bogus").get_data(as_text=True)
    assert "unknown state &#39;bogus&#39;: showing every state" in html


def test_a_link_in_a_message_cannot_become_script():
    from service.notifications.views import slack_html

    html = str(slack_html("<javascript:alert(1)|x> <https://a.example/?q=\"'|go> *b* &lt;i&gt;"))
    assert html.count("<a href") == 1
    assert "&lt;javascript:alert(1)|x&gt;" in html
    assert '<a href="https://a.example/?q=&#34;&#39;">go</a>' in html
    assert "<strong>b</strong> &lt;i&gt;" in html


def test_admin_sets_an_apps_channel_on_its_page(app, admin_client, session):
    make_app(session)
    page = admin_client.get("/apps/pos").get_data(as_text=True)
    assert 'id="slack"' in page and "Save Slack settings" in page
    response = builders.post_form(
        admin_client,
        "/apps/pos/notifications",
        {"channel": "pos-releases", "incident_min_score": "6"},
        page="/apps/pos",
    )
    assert response.status_code == 302
    row = session.exec(select(AppChannel)).one()
    assert (row.channel, row.incident_min_score) == ("#pos-releases", 6)
    event = session.exec(
        select(AuditEvent).where(AuditEvent.action == "notification.app_channel")
    ).one()
    assert event.actor == "user:admin@example.com"
    response = builders.post_form(
        admin_client,
        "/apps/pos/notifications",
        {"channel": "Not A Channel!", "incident_min_score": ""},
        page="/apps/pos",
    )
    assert response.status_code == 302
    page = admin_client.get("/apps/pos").get_data(as_text=True)
    assert "Not saved: a Slack channel is a name such as #pos-releases" in page


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": "has spaces"}, "channel"),
        ({"channel": "#ok", "incident_min_score": 16}, "incident_min_score"),
        ({"channel": "#ok", "incident_min_score": 0}, "incident_min_score"),
        ({"channel": "#ok", "extra": 1}, "extra"),
    ],
)
def test_app_channel_api_refuses_bad_input_naming_the_field(
    app, admin_client, session, body, field
):
    make_app(session)
    response = admin_client.put(
        "/api/v1/apps/pos/notifications", json=body, headers=builders.csrf_header(admin_client)
    )
    assert response.status_code == 422, response.json
    assert [f["field"] for f in response.json["error"]["fields"]] == [field]
    assert session.exec(select(AppChannel)).first() is None


def test_app_channel_api_reads_for_a_read_token(app, client, session, reader):
    make_app(session)
    response = client.get("/api/v1/apps/pos/notifications", headers=reader)
    assert response.status_code == 200
    assert response.json == {
        "app": "pos",
        "channel": "",
        "incident_min_score": 9,
        "own_threshold": False,
        "via": "bot",
        "destination": "#releases (chat.postMessage)",
    }
    assert client.get("/api/v1/apps/nope/notifications", headers=reader).status_code == 404


def test_slack_user_mapping_page_and_api(app, admin_client, session, people):
    page = admin_client.get("/notifications/slack-users").get_data(as_text=True)
    assert "Slack member id of Rita Manager" in page
    response = builders.post_form(
        admin_client,
        "/notifications/slack-users",
        {"email": "RM@example.com", "slack_user_id": "u0rita0001"},
    )
    assert response.status_code == 302
    assert session.get(SlackUser, "rm@example.com").slack_user_id == "U0RITA0001"
    headers = builders.csrf_header(admin_client)
    listed = admin_client.get("/api/v1/notifications/slack-users").json
    assert {"email": "rm@example.com", "slack_user_id": "U0RITA0001"}.items() <= next(
        p for p in listed if p["email"] == "rm@example.com"
    ).items()
    response = admin_client.put(
        "/api/v1/notifications/slack-users",
        json={"email": "qa@example.com", "slack_user_id": "not-an-id"},
        headers=headers,
    )
    assert response.status_code == 422
    assert response.json["error"]["fields"][0]["field"] == "slack_user_id"
    response = admin_client.put(
        "/api/v1/notifications/slack-users",
        json={"email": "nobody@example.com", "slack_user_id": "U0NOBODY01"},
        headers=headers,
    )
    assert response.status_code == 422
    assert response.json["error"]["fields"][0]["field"] == "email"
    response = admin_client.put(
        "/api/v1/notifications/slack-users",
        json={"email": "rm@example.com", "slack_user_id": ""},
        headers=headers,
    )
    assert response.status_code == 200 and response.json["slack_user_id"] == ""
    session.expire_all()
    assert session.get(SlackUser, "rm@example.com") is None
    actions = session.exec(
        select(AuditEvent.summary).where(AuditEvent.action == "notification.slack_user")
    ).all()
    assert len(actions) == 2


def test_resend_a_failed_message(app, admin_client, session, people, slack):
    with app.app_context():
        a = make_app(session, channel="#nowhere")
        move(session, make_release(session, a), "submit", "approve")
    (job,) = run_due(app)
    assert job.state == "failed"
    session.merge(AppChannel(app_id=a.id, channel="#pos-releases", updated_by="test"))
    session.commit()
    (row,) = messages(session)
    response = admin_client.post(
        f"/api/v1/notifications/{row.id}/resend", headers=builders.csrf_header(admin_client)
    )
    assert response.status_code == 202, response.json
    assert response.json["state"] == "queued" and response.json["channel"] == "#pos-releases"
    again = admin_client.post(
        f"/api/v1/notifications/{row.id}/resend", headers=builders.csrf_header(admin_client)
    )
    assert again.status_code == 409
    (job,) = run_due(app)
    assert job.state == "succeeded" and len(slack.posted) == 1
    listed = admin_client.get("/api/v1/notifications?state=sent").json
    assert [m["id"] for m in listed["messages"]] == [row.id]
    assert listed["configured"] and listed["bot"] and not listed["webhook"]
    bad = admin_client.get("/api/v1/notifications?state=nope")
    assert bad.status_code == 422 and bad.json["error"]["fields"][0]["field"] == "state"
    bad = admin_client.get("/api/v1/notifications?app=nope")
    assert bad.status_code == 422 and bad.json["error"]["fields"][0]["field"] == "app"


def test_reminder_hook_is_public_for_the_meeting_feature():
    assert callable(events.queue_meeting_reminders)
    assert not hasattr(events, "notify_meeting_decisions")  # the meeting's own messages do it


def test_a_meetings_messages_show_their_real_delivery_on_its_week_page_and_api(
    app, client, session, people, slack
):
    """Queued when the meeting opens, sent once the worker ran; the week page and
    GET /api/v1/meetings/{week}/messages say so."""
    from service.meetings import services as meetings

    with app.app_context():
        make_app(session, channel="#pos-releases")
        week = meetings.current_week(session)
        meetings.open_meeting(session, week=week, user=people["rm"])
        session.commit()
    builders.login(client, "rm@example.com")
    listed = client.get(f"/api/v1/meetings/{week}/messages").json
    assert [(m["event"], m["channel"], m["state"]) for m in listed] == [
        ("opened", "meetings", "queued")
    ]
    assert listed[0]["destination"] == "#release-meeting (chat.postMessage)"
    page = client.get(f"/meetings/{week}").get_data(as_text=True)
    assert 'data-state="queued"' in page and "1 queued" in page
    run_due(app)
    (posted,) = slack.posted
    assert posted.channel == "C0MEETING1" and "is open (Rita Manager)" in posted.text
    listed = client.get(f"/api/v1/meetings/{week}/messages").json
    assert listed[0]["state"] == "sent" and listed[0]["sent_at"] and listed[0]["error"] is None
    page = client.get(f"/meetings/{week}").get_data(as_text=True)
    assert 'data-state="sent"' in page and ">Sent<" in page
    # The same message in the notifications list, as every other Slack message.
    everything = client.get("/api/v1/notifications?event=meeting_opened").json["messages"]
    assert [m["id"] for m in everything] == [listed[0]["id"]]


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("SLACK_WEBHOOK_URL", "hooks.slack.com/services/x", "http(s) URL"),
        ("SLACK_BASE_URL", "ftp://slack", "http(s) URL"),
        ("SLACK_TIMEOUT_SECONDS", "0", "more than 0"),
        ("SLACK_TIMEOUT_SECONDS", "soon", "a number"),
        ("SLACK_INCIDENT_MIN_SCORE", "16", "1 to 15"),
        ("SLACK_REMINDER_HOURS", "0", "at least 1"),
    ],
)
def test_slack_settings_are_checked(name, value, says):
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"RELGOV_ENV": "test", name: value})
    assert name in str(refused.value) and says in str(refused.value)


def test_slack_settings_from_the_environment():
    settings = Settings.from_env(
        {
            "RELGOV_ENV": "test",
            "SLACK_BOT_TOKEN": " xoxb-1 ",
            "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x",
            "SLACK_TIMEOUT_SECONDS": "2.5",
        }
    )
    assert settings.slack_configured and settings.slack_bot_token == "xoxb-1"
    assert settings.slack_base_url == "https://slack.com/api/"
    assert settings.slack_timeout_seconds == 2.5
    assert not Settings.from_env({"RELGOV_ENV": "test"}).slack_configured


def test_sending_a_meetings_own_message_again_goes_to_the_meetings_channel(
    app, session, people, slack
):
    from service.meetings import services as meetings
    from service.notifications import outbox

    make_app(session, channel="#pos-releases")
    meetings.open_meeting(session, week=meetings.current_week(session), user=people["rm"])
    session.commit()
    (row,) = messages(session)
    assert row.event == "meeting_opened" and row.channel == "#release-meeting"
    row.state, row.channel, row.last_error = "failed", "#gone", "channel_not_found"
    session.add(row)
    session.commit()
    outbox.resend(session, row, actor="user:admin@example.com")
    session.commit()
    assert (row.state, row.channel) == ("queued", "#release-meeting")
    run_due(app)
    assert [p.channel for p in slack.posted] == ["C0MEETING1"]


def test_a_meetings_no_go_is_one_message_not_a_decision_and_a_rejection(app, session, people):
    """A no-go rejects a release in review: its app's channel hears the decision once; the
    rejection is in the audit log, not in a second message. A rejection outside a meeting is
    still announced."""
    from datetime import UTC, datetime

    from service.meetings import services as meetings

    with app.app_context():
        pos = make_app(session, channel="#pos-releases")
        release = make_release(
            session, pos, "3.17.0", state="in_review", scheduled_for=datetime.now(UTC)
        )
        other = make_release(session, pos, "3.16.1", state="in_review", kind="hotfix")
        week = meetings.current_week(session)
        meeting = meetings.open_meeting(session, week=week, user=people["rm"])
        meetings.decide(
            session,
            meeting=meeting,
            release=release,
            user=people["rm"],
            decision="no_go",
            reason="printer crash",
        )
        session.commit()
        move(session, other, "reject", reason="wrong build")
    about = [(m.event, m.release_id) for m in messages(session) if m.release_id]
    assert about == [("meeting_decided", release.id), ("rejected", other.id)]
    rejections = session.exec(select(AuditEvent).where(AuditEvent.action == "release.reject")).all()
    assert {e.subject_id for e in rejections} == {str(release.id), str(other.id)}
