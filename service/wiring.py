"""What the app is made of, in one place: every feature's pages, API and CLI, and who reacts
to what.

Read this file to learn what happens when a release moves (its guards and reactions), how
each automatic checklist item is evaluated, which jobs the worker runs and when, what the
release page shows besides the release itself, and which gauges ``/metrics`` reads from the
database. ``create_app`` calls :func:`init_app` once; nothing here happens on import.
"""

from __future__ import annotations

from flask import Flask

from release_notes.notion import SchemaCache
from service import audit, db, jobs, metrics, pages, timezones
from service.adoption import api as adoption_api
from service.adoption import fastpath, periodic
from service.adoption import views as adoption_views
from service.api import blueprint as api_blueprint
from service.audit_log import api as audit_api
from service.audit_log import views as audit_views
from service.beta import answers, stages
from service.beta import api as beta_api
from service.beta import views as beta_views
from service.commands import COMMANDS
from service.incidents import api as incidents_api
from service.incidents import services as incidents
from service.incidents import views as incidents_views
from service.jobs.throttle import SharedTokenBucket
from service.meetings import api as meetings_api
from service.meetings import minutes as meeting_minutes
from service.meetings import notifications as meeting_notifications
from service.meetings import services as meetings
from service.meetings import views as meetings_views
from service.notifications import api as notifications_api
from service.notifications import events as notify
from service.notifications import outbox
from service.notifications import views as notifications_views
from service.people import api as people_api
from service.people import login_views
from service.people import views as people_views
from service.publishing import api as publishing_api
from service.publishing import notion_publish
from service.publishing import views as publishing_views
from service.releases import api as releases_api
from service.releases import (
    apps_api,
    apps_views,
    calendar_views,
    checklist,
    guards,
    lifecycle,
    notes,
    notes_views,
)
from service.releases import views as releases_views
from service.search import api as search_api
from service.search import index as search_index
from service.search import sources as search
from service.search import views as search_views

# Who may take each lifecycle action: checked first, so a caller who may not act is told so
# (403) whatever state the release is in. (service/policy.py TRANSITIONS says the same.)
PERMITS: dict[str, tuple[lifecycle.Guard, ...]] = {
    "submit": (guards.submitter,),
    "approve": (guards.approver,),
    "reject": (guards.release_manager_in_person,),
    "reopen": (guards.release_manager_in_person,),
    "start_beta": (guards.release_manager_in_person,),
    "promote": (guards.release_manager_in_person,),
    "complete": (guards.release_manager_in_person,),
    # CI's token may stop a release; a person doing so must be a release manager.
    "halt": (guards.release_manager,),
    "resume": (guards.release_manager_in_person,),
    "cancel": (guards.release_manager,),
}

# What else a move needs once the state machine allows it, checked in this order.
GUARDS: dict[str, tuple[lifecycle.Guard, ...]] = {
    # Every required item approved; separation of duties (per app).
    "approve": (guards.approval,),
    # Promotion also needs the beta evidence: soak, adoption, beta incidents (per app).
    "promote": (incidents.promotion_guard,),
}

# What follows every transition, in its transaction, in this order.
REACTIONS: tuple[lifecycle.Reaction, ...] = (
    # beta → rolling_out puts the release on its app's first rollout stage.
    stages.first_stage_on_promote,
    # Approval queues publishing the notes to Notion; later states refresh a published page.
    notion_publish.on_release_transition,
)

# What a move would do now, beyond the state change, said before a person confirms it.
CONSEQUENCES: dict[str, tuple[lifecycle.Consequence, ...]] = {
    "approve": (notion_publish.approve_consequence,),
    "promote": (stages.promote_consequence,),
    "complete": (stages.complete_consequence,),
    "halt": (stages.halt_consequence,),
}

# Who hears each audited change, in its transaction: approvals, rejections, halts, serious
# incidents and Notion publish failures become Slack messages in the outbox.
AUDIT_LISTENERS: tuple[audit.Listener, ...] = (notify.on_audit_event,)

# Who hears that a release's notes were edited: a published page is brought up to date; a
# support review of the old text is re-opened; the search index takes the new text (in the
# edit's transaction, as every search reaction).
NOTES_EDITED: tuple[notes.EditReaction, ...] = (
    notion_publish.notes_edited,
    checklist.reopen_reviews,
    search.RELEASE_NOTES.notes_changed,
)
# ... and that they were generated from git.
NOTES_GENERATED: tuple[notes.EditReaction, ...] = (search.RELEASE_NOTES.notes_changed,)
# Who hears that an incident was recorded or changed.
INCIDENT_CHANGED: tuple[incidents.IncidentReaction, ...] = (search.INCIDENTS.changed,)

# What the search index holds, source by source (service/search/sources.py).
SEARCH_SOURCES: tuple[search_index.Source, ...] = (
    search.RELEASE_NOTES,
    search.INCIDENTS,
    search.MEETING_MINUTES,
)

# How each automatic checklist rule is evaluated.
CHECKLIST_RULES: dict[str, checklist.Evaluator] = {
    "notes_generated": checklist.notes_generated,
    "commits_linked": checklist.commits_linked,
    "notes_published": checklist.notes_published,
    # The promotion gates, with an admin's gate override (service.incidents).
    "beta_soak": incidents.beta_soak_rule,
    "beta_adoption": incidents.beta_adoption_rule,
    "incident_score": incidents.incident_score_rule,
}

# The sections other features add to the release page, top to bottom.
RELEASE_PANELS: tuple[releases_views.Panel, ...] = (
    ("beta/_release_rollout.html", beta_views.rollout_panel),
    ("publishing/_release_publish.html", publishing_views.publish_panel),
    ("adoption/_release_adoption.html", adoption_views.adoption_panel),
    ("incidents/_release_incidents.html", incidents_views.release_panel),
    ("meetings/_release_meetings.html", meetings_views.release_panel),
    ("notifications/_release_panel.html", notifications_views.release_panel),
)

# The sections other features add to an app's page.
APP_PANELS: tuple[apps_views.AppPanel, ...] = (
    ("notifications/_app_panel.html", notifications_views.app_panel),
)

# The sections other features put at the top of the dashboard, for the logged-in person.
DASHBOARD_PANELS: tuple[pages.DashboardPanel, ...] = (
    ("meetings/_inbox.html", meetings_views.inbox_panel),  # "Waiting for you"
)

# Who hears about what happens in a weekly meeting (opened, a release added, decided,
# amended, closed, an action item created or closed), in its transaction, in this order.
# Each event's Slack message is written to the notifications outbox (the release's app
# channel, or the meetings channel) for the job worker to send, so Slack being down never
# blocks a decision.
MEETING_REACTIONS: tuple[meetings.Reaction, ...] = (
    meeting_notifications.record,
    # Closing a meeting (or amending it) publishes its minutes to Notion, when configured.
    meeting_minutes.on_meeting_event,
    search.MEETING_MINUTES.meeting_event,
)

# Gauges read from the database at each /metrics scrape.
GAUGES: tuple[metrics.Collector, ...] = (
    jobs.collect_metrics,
    notion_publish.collect_metrics,
    periodic.collect_stall_gauge,
    metrics.collect_database_writable,
)

BLUEPRINTS = (
    login_views.bp,
    people_views.bp,
    audit_views.bp,
    releases_views.bp,
    apps_views.bp,
    calendar_views.bp,
    notes_views.bp,
    beta_views.bp,
    adoption_views.bp,
    incidents_views.bp,
    meetings_views.bp,
    publishing_views.bp,
    notifications_views.bp,
    search_views.bp,
)

API = (
    people_api.routes,
    people_api.admin_routes,
    audit_api.routes,
    apps_api.routes,
    releases_api.routes,
    beta_api.routes,
    adoption_api.routes,
    incidents_api.routes,
    meetings_api.routes,
    publishing_api.routes,
    notifications_api.routes,
    search_api.routes,
)


def job_kinds() -> jobs.JobKinds:
    """The jobs the worker runs."""
    kinds = jobs.JobKinds()
    # Release notes from git, off the request (registration and "Regenerate" queue it).
    kinds.handler(
        notes.KIND,
        notes.handle_generate,
        on_error=notes.on_generate_error,
        max_attempts=notes.MAX_ATTEMPTS,
    )
    kinds.handler(
        notion_publish.KIND, notion_publish.handle_publish, on_error=notion_publish.on_publish_error
    )
    # A closed meeting's minutes to Notion (key minutes:<week>, coalesced).
    kinds.handler(
        meeting_minutes.KIND,
        meeting_minutes.handle_publish,
        on_error=meeting_minutes.on_publish_error,
    )
    kinds.every("adoption-rollup", periodic.EVERY_SECONDS, periodic.periodic_rollup)
    # Slack: one job per message (retries, its own breaker); reminders before the weekly
    # meeting (its time and "Waiting for you" from service/meetings) and the straggler digest.
    kinds.handler(
        outbox.KIND,
        outbox.handle_send,
        on_error=outbox.on_send_error,
        max_attempts=outbox.MAX_ATTEMPTS,
    )
    kinds.every("slack-reminders", notify.REMINDER_EVERY_SECONDS, notify.periodic_reminders)
    kinds.every("slack-digest", notify.DIGEST_EVERY_SECONDS, notify.periodic_digest)
    return kinds


def init_app(app: Flask) -> None:
    """Give ``app`` every feature: pages, API, CLI, and the wiring above."""
    pages.init_app(app, panels=DASHBOARD_PANELS)  # the dashboard and the navigation
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    api_blueprint.init_app(app, *API)
    for command in COMMANDS:
        app.cli.add_command(command)

    lifecycle.install(
        lifecycle.LifecycleHooks(
            permits=PERMITS, guards=GUARDS, reactions=REACTIONS, consequences=CONSEQUENCES
        )
    )
    checklist.install(CHECKLIST_RULES)
    notes.install(NOTES_EDITED, on_generate=NOTES_GENERATED)
    incidents.install(INCIDENT_CHANGED)
    search_index.init_app(app, SEARCH_SOURCES)
    audit.listen(AUDIT_LISTENERS)
    releases_views.init_app(app, panels=RELEASE_PANELS, gates=incidents.evaluate_gates)
    apps_views.init_app(app, panels=APP_PANELS)
    meetings.install(MEETING_REACTIONS)
    # Times on pages about no one app show in the meeting's time zone.
    timezones.init_app(app, default_zone=lambda: meetings.meeting_zone_name(db.session()))
    metrics.collect_on_scrape(app, GAUGES)
    jobs.init_app(app, job_kinds())

    answers.init_app(app)  # the update answer's per-process fleet snapshot
    settings = app.config["RELGOV_SETTINGS"]
    # One Notion rate limit for every worker and process (Notion allows about 3 requests/s
    # per integration), kept in the database; the data source's schema is checked once
    # per process every 10 minutes.
    app.extensions[notion_publish.LIMITER] = SharedTokenBucket(
        app.extensions["relgov.engine"], notion_publish.BREAKER, rate=settings.notion_rate
    )
    app.extensions[notion_publish.SCHEMA_CACHE] = SchemaCache()
    if settings.in_process_worker or settings.env == "development":
        app.extensions.setdefault("relgov.background", []).append(jobs.start_in_process_worker)
    fastpath.install(app)  # the common heartbeat request, answered in front of Flask
