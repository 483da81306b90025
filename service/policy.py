"""Who may use each endpoint: the one declared authorization policy of the service.

Every Flask endpoint (every page, form, API operation, static file, probe) has one line in
:data:`POLICY`. The decorators on the views enforce it before the request's input is read:
``login_required`` and ``roles_required`` on pages; on the API, the operation decorator
(``service/api/operations.py``) checks the operation's ``scope=``, or, for an operation
acting for a person (``scope=None``), this line itself. ``create_app`` refuses to start when
an endpoint has no line here or an API operation's scope disagrees with its line, and
``tests/service/test_authz_matrix.py`` sends every endpoint and method as every role, no login
and every token scope and checks the answer against this table.

A rule lists who passes:

- ``PUBLIC``: anyone, logged in or not.
- ``LOGIN``: any logged-in person (any role).
- ``roles(...)``: a logged-in person holding one of the roles; an admin always passes.
- ``person(...)``: the same, on the JSON API: the session cookie plus ``X-CSRFToken``;
  bearer tokens are refused (a decision is a person's, not a machine's).
- ``token(scope)``: a bearer token holding the scope; ``session=True`` also lets a logged-in
  person in (the browser reading the API).
- ``a | b``: either.

``ITEM_OWNER`` stands for the checklist item's owner role (read from the item: only that role
signs it, admins override instead).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from flask import Flask

from service.models import ROLES, SCOPES

ITEM_OWNER = "item owner"
ANY_ROLE = frozenset(ROLES)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Rule:
    """Who passes: ``public``, the roles of a logged-in person, or the token scopes."""

    public: bool = False
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    api_person: bool = False  # roles reach it through the API's session + X-CSRFToken

    def __or__(self, other: Rule) -> Rule:
        return Rule(
            public=self.public or other.public,
            roles=self.roles | other.roles,
            scopes=self.scopes | other.scopes,
            api_person=self.api_person or other.api_person,
        )

    def allows(
        self, *, role: str | None, scopes: Iterable[str] = (), item_owner: str | None = None
    ) -> bool:
        """Whether a caller with ``role`` (None: not logged in) or a token with ``scopes``
        passes; ``item_owner`` is the owner role of the checklist item the request names."""
        if self.public:
            return True
        if role is not None:
            held = {item_owner if r == ITEM_OWNER else r for r in self.roles}
            if role in held:
                return True
        return bool(self.scopes.intersection(scopes))

    def roles_for(self, item_owner: str | None = None) -> list[str]:
        """The roles that pass, for a message (``ITEM_OWNER`` as ``item_owner``'s role)."""
        held = {item_owner if r == ITEM_OWNER else r for r in self.roles}
        return sorted(r.replace("_", " ") for r in held if r)

    def describe(self) -> str:
        if self.public:
            return "public"
        parts = []
        if self.roles == ANY_ROLE:
            parts.append("any logged-in person")
        elif self.roles:
            parts.append("roles " + ", ".join(sorted(self.roles)))
        if self.scopes:
            parts.append("token " + " or ".join(sorted(self.scopes)))
        return " | ".join(parts) or "nobody"


PUBLIC = Rule(public=True)
LOGIN = Rule(roles=ANY_ROLE)


def roles(*names: str) -> Rule:
    """A logged-in person with one of ``names``; admins always pass (except ITEM_OWNER)."""
    unknown = set(names) - set(ROLES) - {ITEM_OWNER}
    assert not unknown, f"unknown roles {unknown}"
    return Rule(roles=frozenset(names) | ({"admin"} if ITEM_OWNER not in names else set()))


def person(*names: str) -> Rule:
    """An API operation acting for a person (session + X-CSRFToken; tokens refused)."""
    return Rule(roles=roles(*names).roles if names else ANY_ROLE, api_person=True)


def token(scope: str, *, session: bool = False) -> Rule:
    """A bearer token holding ``scope``; ``session``: a logged-in person too."""
    assert scope in SCOPES, f"unknown scope {scope!r}"
    return Rule(scopes=frozenset({scope}), roles=ANY_ROLE if session else frozenset())


ADMIN = roles("admin")
READ = token("read", session=True)  # API reads: a read token, or the browser's session
FLEET_EDITORS = roles("support", "release_manager")
INCIDENT_RECORDERS = roles("release_manager", "engineer", "qa", "support")
NOTES_EDITORS = roles("release_manager", "engineer", "support")
REGISTRARS = roles("release_manager", "engineer")
RM = roles("release_manager")
ACTION_ITEM_CLOSERS = roles("release_manager", "engineer", "qa", "support")


def by_method(**rules: Rule) -> dict[str, Rule]:
    """Different rules per HTTP method: ``by_method(GET=LOGIN, POST=ADMIN)``."""
    return rules


# One line per endpoint, grouped by area. The view's decorator enforces it; the matrix test
# proves both agree.
POLICY: Mapping[str, Rule | Mapping[str, Rule]] = {
    # --- operations, sign-in, static -----------------------------------------------------
    "ops.healthz": PUBLIC,  # load balancers
    "ops.metrics": PUBLIC,  # the Prometheus scraper (keep it on the internal network)
    "static": PUBLIC,
    "auth.login": PUBLIC,
    "auth.logout": PUBLIC,  # logging out when not logged in just shows the login page
    "pages.dashboard": LOGIN,
    "audit.audit_log": LOGIN,
    # --- admin ---------------------------------------------------------------------------
    "admin.users": ADMIN,
    "admin.edit_user": ADMIN,
    "admin.logout_everywhere": ADMIN,
    "admin.lift_login_pause": ADMIN,
    "admin.tokens": ADMIN,
    "admin.revoke": ADMIN,
    "admin.hand_over": ADMIN,
    "publishing.admin_notion": ADMIN,
    "publishing.admin_init_schema": ADMIN,
    "publishing.admin_retry": ADMIN,
    # --- apps, trains, checklist templates (pages) ---------------------------------------
    "apps.app_list": LOGIN,
    "apps.app_new": ADMIN,
    "apps.app_detail": by_method(GET=LOGIN, POST=ADMIN),
    "apps.train_change": ADMIN,
    "apps.template_edit": by_method(GET=LOGIN, POST=ADMIN),
    # --- releases, checklist, meeting (pages) --------------------------------------------
    "releases.release_list": LOGIN,
    "releases.release_new": REGISTRARS,
    "releases.release_detail": LOGIN,
    # Submit: engineers and release managers; every other move: release managers. The lifecycle
    # guard refuses the rest with a message on the page.
    "releases.release_transition": REGISTRARS,
    "releases.release_git_ref": REGISTRARS,  # a draft's ref; the service refuses other states
    # Anyone may try; the service records it only for the item's owner role (message otherwise).
    "releases.item_sign": LOGIN,
    "releases.item_override": ADMIN,
    "calendar.calendar": LOGIN,
    "publishing.publish": REGISTRARS,
    # --- the weekly meeting (pages): release managers run it; anyone working on releases
    # closes an action item (usually its owner); everyone logged in reads it.
    "meetings.current": LOGIN,
    "meetings.index": LOGIN,
    "meetings.week": LOGIN,
    "meetings.print_week": LOGIN,
    "meetings.release_print": LOGIN,
    "meetings.open_meeting": RM,
    "meetings.add_release": RM,
    "meetings.decide": RM,
    "meetings.amend": RM,
    "meetings.attendees": RM,
    "meetings.minutes": RM,
    "meetings.add_action_item": RM,
    "meetings.close_action_item": ACTION_ITEM_CLOSERS,
    "meetings.close": RM,
    "meetings.publish_minutes": RM,
    # --- release notes (pages) -----------------------------------------------------------
    "notes.notes_list": LOGIN,
    "notes.notes_page": LOGIN,
    "notes.notes_preview": LOGIN,  # renders the posted Markdown; changes nothing
    "notes.notes_save": NOTES_EDITORS,
    "notes.notes_regenerate": NOTES_EDITORS,
    "notes.notes_resolve": NOTES_EDITORS,
    # --- beta cohort, stores, devices, rollout (pages) -----------------------------------
    "beta.cohort": LOGIN,
    "beta.stores": LOGIN,
    "beta.store": LOGIN,
    "beta.fill": FLEET_EDITORS,
    "beta.new_store": FLEET_EDITORS,
    "beta.edit_store": FLEET_EDITORS,
    "beta.add_device": FLEET_EDITORS,
    "beta.edit_device": FLEET_EDITORS,
    "beta.delete_device": FLEET_EDITORS,
    "beta.change_cohort": FLEET_EDITORS,
    "beta.freeze_store": FLEET_EDITORS,
    "beta.lift_freeze": FLEET_EDITORS,
    "beta.import_stores": FLEET_EDITORS,
    "beta.advance_release_stage": RM,
    # --- adoption (pages) ----------------------------------------------------------------
    "adoption.index": LOGIN,
    "adoption.app_page": LOGIN,
    # --- incidents and promotion gates (pages) -------------------------------------------
    "incidents.index": LOGIN,
    "incidents.detail": LOGIN,
    "incidents.trend_index": LOGIN,
    "incidents.trend": LOGIN,
    "incidents.new": INCIDENT_RECORDERS,
    "incidents.update": INCIDENT_RECORDERS,
    "incidents.resolve": INCIDENT_RECORDERS,
    "incidents.halt": RM,
    "incidents.override_gate": ADMIN,
    "incidents.app_settings": ADMIN,
    # --- Slack notifications (pages) -----------------------------------------------------
    "notifications.index": LOGIN,  # what was sent, or would have been
    "notifications.resend": ADMIN,
    "notifications.app_settings": ADMIN,  # the Slack panel on an app's page
    "notifications.slack_users": ADMIN,
    "notifications.slack_user_save": ADMIN,
    # --- search (pages) ------------------------------------------------------------------
    "search.search_page": LOGIN,
    "search.store_changes": LOGIN,
    # --- API: description, identity, audit -----------------------------------------------
    "api.openapi_json": PUBLIC,
    "api_docs.api_docs": PUBLIC,
    "api.me": READ,
    "api.list_audit_events": READ,
    # --- API: people and tokens (an admin's session; tokens refused) ---------------------
    "api.list_users": person("admin"),
    "api.create_person": person("admin"),
    "api.patch_person": person("admin"),
    "api.list_tokens": person("admin"),
    "api.create_api_token": person("admin"),
    "api.revoke_api_token": person("admin"),
    # --- API: apps, trains, checklist templates ------------------------------------------
    "api.list_apps": READ,
    "api.get_app": READ,
    "api.get_trains": READ,
    "api.get_calendar": READ,
    "api.get_template": READ,
    "api.list_template_versions": READ,
    "api.post_app": person("admin"),
    "api.patch_app": person("admin"),
    "api.post_skip": person("admin"),
    "api.delete_skip": person("admin"),
    "api.put_template": person("admin"),
    # --- API: releases, checklist, meeting, notes, publishing ----------------------------
    "api.list_releases": READ,
    "api.get_release": READ,
    "api.register": token("releases:write"),
    "api.patch_release": token("releases:write") | person("release_manager", "engineer"),
    # Tokens (CI) submit, cancel or halt; the lifecycle guard leaves approval to people.
    "api.post_transition": token("releases:write") | person("release_manager", "engineer"),
    "api.list_sign_offs": READ,
    "api.post_sign_off": person(ITEM_OWNER),
    "api.post_override": person("admin"),
    "api.get_notes": READ,
    # Renders the posted Markdown and changes nothing: a read token, or anyone's session.
    "api.preview_notes": token("read") | person(),
    "api.put_notes": token("releases:write") | person("release_manager", "engineer", "support"),
    "api.post_regenerate": token("releases:write"),
    "api.release_publish_status": READ,
    "api.publish_release_notes": token("releases:write"),
    # --- API: the weekly meeting ---------------------------------------------------------
    "api.list_meeting_weeks": READ,
    "api.get_meeting_week": READ,
    "api.get_meeting_record": READ,
    "api.list_meeting_messages": READ,
    "api.get_meeting": READ,  # a week's agenda per train (the older, shorter form)
    "api.list_meetings": READ,  # a release's meeting decisions
    "api.open_meeting": person("release_manager"),
    "api.add_meeting_release": person("release_manager"),
    "api.post_decision": person("release_manager"),
    "api.post_amendment": person("release_manager"),
    "api.put_attendees": person("release_manager"),
    "api.put_minutes": person("release_manager"),
    "api.post_action_item": person("release_manager"),
    "api.close_meeting": person("release_manager"),
    "api.get_meeting_minutes": READ,
    "api.publish_meeting_minutes": person("release_manager"),
    "api.post_meeting": person("release_manager"),  # a decision, from the release's side
    "api.list_action_items": READ,
    "api.close_action_item": person("release_manager", "engineer", "qa", "support"),
    "api.get_my_inbox": person(),  # "Waiting for you": any logged-in person, their own
    # --- API: stores, devices, beta cohort, update answer --------------------------------
    "api.list_stores": READ,
    "api.get_store": READ,
    "api.get_cohort": READ,
    "api.create_store": token("fleet:write"),
    "api.patch_store": token("fleet:write"),
    "api.import_stores": token("fleet:write"),
    "api.create_device": token("fleet:write"),
    "api.patch_device": token("fleet:write"),
    "api.delete_device": token("fleet:write"),
    "api.change_cohort": token("fleet:write"),
    "api.fill_cohort": token("fleet:write"),
    "api.create_freeze": token("fleet:write"),
    "api.lift_freeze": token("fleet:write"),
    "api.update_answer": token("heartbeats:write") | READ,  # store devices ask it
    "api.get_rollout": READ,
    "api.advance_rollout": person("release_manager"),
    # --- API: heartbeats and adoption reports --------------------------------------------
    "api.adoption_post_heartbeats": token("heartbeats:write"),
    "api.adoption_series": READ,
    "api.adoption_series_csv": READ,
    "api.adoption_census": READ,
    "api.adoption_census_csv": READ,
    "api.adoption_stragglers": READ,
    "api.adoption_stragglers_csv": READ,
    "api.adoption_offline": READ,
    "api.adoption_offline_csv": READ,
    "api.adoption_milestones": READ,
    "api.adoption_milestones_csv": READ,
    "api.adoption_stalls": READ,
    "api.adoption_stalls_csv": READ,
    # --- API: incidents and gates --------------------------------------------------------
    "api.list_incidents": READ,
    "api.get_incident": READ,
    "api.create_incident": token("incidents:write"),
    "api.patch_incident": token("incidents:write"),
    "api.incident_trend": READ,
    "api.release_gates": READ,
    "api.override_gate": person("admin"),
    # --- API: Slack notifications --------------------------------------------------------
    "api.list_notifications": READ,
    "api.resend_notification": person("admin"),
    "api.get_app_notifications": READ,
    "api.put_app_notifications": person("admin"),
    "api.list_slack_users": person("admin"),  # people's emails
    "api.put_slack_user": person("admin"),
    # --- API: search ---------------------------------------------------------------------
    "api.search": READ,
    "api.store_changes": READ,
}


# Who may make each lifecycle move through ``api.post_transition`` (the lifecycle permits of
# service/wiring.py enforce it, before the state machine: 403 before 409). CI's token submits
# a candidate, cancels it or halts a rollout; every other move is a release manager's decision.
TRANSITIONS: Mapping[str, Rule] = {
    "submit": token("releases:write") | person("release_manager", "engineer"),
    "approve": person("release_manager"),
    "reject": person("release_manager"),
    "reopen": person("release_manager"),
    "start_beta": person("release_manager"),
    "promote": person("release_manager"),
    "complete": person("release_manager"),
    "halt": token("releases:write") | person("release_manager"),
    "resume": person("release_manager"),
    "cancel": token("releases:write") | person("release_manager"),
}


class PolicyError(RuntimeError):
    """The app's endpoints and the declared policy disagree."""


def rule_for(endpoint: str, method: str) -> Rule:
    """The rule for ``method`` on ``endpoint`` (HEAD follows GET); KeyError if undeclared."""
    entry = POLICY[endpoint]
    if isinstance(entry, Rule):
        return entry
    return entry["GET" if method == "HEAD" else method]


def endpoint_methods(app: Flask) -> dict[str, set[str]]:
    """Every endpoint of ``app`` and its methods (without HEAD and OPTIONS)."""
    found: dict[str, set[str]] = {}
    for url_rule in app.url_map.iter_rules():
        methods = (url_rule.methods or set()) - {"HEAD", "OPTIONS"}
        found.setdefault(url_rule.endpoint, set()).update(methods)
    return found


class ScopedOperation(Protocol):
    """An API operation as the policy check sees it."""

    @property
    def endpoint(self) -> str: ...

    @property
    def method(self) -> str: ...

    @property
    def scopes(self) -> tuple[str, ...]: ...


def problems(app: Flask, operations: Sequence[ScopedOperation] = ()) -> list[str]:
    """What disagrees between ``app`` and :data:`POLICY`: endpoints or methods without a
    rule, rules for endpoints that do not exist, API scopes that differ from the rule."""
    found = endpoint_methods(app)
    out = []
    for endpoint, methods in sorted(found.items()):
        entry = POLICY.get(endpoint)
        if entry is None:
            out.append(f"{endpoint} ({', '.join(sorted(methods))}) has no rule in POLICY")
        elif not isinstance(entry, Rule):
            for method in sorted(methods - set(entry)):
                out.append(f"{endpoint} has no rule for {method} in POLICY")
            for method in sorted(set(entry) - methods):
                out.append(f"{endpoint} has a rule for {method}, which it does not accept")
    out += [
        f"POLICY names {e!r}, which is not an endpoint" for e in sorted(set(POLICY) - set(found))
    ]
    for op in operations:
        name = f"api.{op.endpoint}"
        if name not in POLICY:
            continue
        for scope in set(op.scopes) - rule_for(name, op.method).scopes:
            out.append(f"{name} checks the scope {scope!r}; POLICY says otherwise")
    return out


def check(app: Flask, operations: Sequence[ScopedOperation]) -> None:
    """Refuse to start an app whose endpoints are not all in the policy."""
    found = problems(app, operations)
    if found:
        raise PolicyError("service/policy.py and the app disagree:\n  " + "\n  ".join(found))
