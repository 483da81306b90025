"""The authorization matrix: every endpoint and method, as every principal, against the policy.

Principals: no login; a logged-in person of each role; a bearer token of each single scope; a
token with every scope. The demo data is seeded once (plus the matrix's own people, tokens and
throwaway objects) and every principal gets its own copy of that database, so one principal's
changes never decide another's answers. A request is *denied* when it gets 401 or 403 or is
sent to the login page; anything else (200, 302 elsewhere, 404, 409, 422 ...) is *allowed*.
Forms carry a valid CSRF token and person-only API calls an ``X-CSRFToken`` header, so CSRF
never masks the answer. A principal the policy refuses sends an empty body (``{}``, a form
with nothing but its CSRF token): who may call is checked before the input, so it must still
be refused (401/403), never told which fields are missing (422).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from sqlmodel import Session, col, select

from beta.models import Device, Store, StoreFreeze
from service import db, policy
from service.api.tokens import clear_token_cache
from service.app import create_app
from service.auth import issue_token
from service.demo import seed_demo
from service.incidents.models import Incident
from service.jobs.models import Job
from service.meetings.models import ActionItem, Meeting
from service.models import ROLES, SCOPES
from service.notifications.models import Notification
from service.releases.lifecycle import TRANSITIONS
from service.releases.models import STATES, App, Release, ReleaseItem, TrainSkip
from service.settings import Settings
from tests import builders
from tests.conftest import PG_TEMPLATE, PG_URL, _pg_url
from version_monitor.models import DeviceState


@dataclass(frozen=True)
class Principal:
    name: str
    role: str | None = None  # logged in with this role
    scopes: tuple[str, ...] = ()  # a bearer token with these scopes


PRINCIPALS = [
    Principal("anonymous"),
    *(Principal(role, role=role) for role in ROLES),
    *(Principal(f"token:{scope}", scopes=(scope,)) for scope in SCOPES),
    Principal("token:all", scopes=SCOPES),
]


@dataclass
class World:
    """The seeded database every principal starts from, and the values for URL parameters."""

    settings: Settings
    params: dict[str, Any]
    item_owner: str
    tokens: dict[str, str] = field(default_factory=dict)  # principal name -> raw token


def _email(role: str) -> str:
    return f"matrix-{role}@example.com"


def _seed(app: Flask, session: Session) -> World:
    seed_demo(app)
    people = {role: builders.make_user(session, email=_email(role), role=role) for role in ROLES}
    tokens = {}
    for principal in PRINCIPALS:
        if principal.scopes:
            tokens[principal.name] = builders.make_token(
                session, creator=people["admin"], scopes=list(principal.scopes), name=principal.name
            )
    target_user = builders.make_user(session, email="matrix-target@example.com", role="viewer")
    target_token, _ = issue_token(
        session=session, name="matrix-target", scopes=["read"], creator=people["admin"]
    )
    job = Job(kind="publish_release", key="matrix", state="failed", last_error="matrix")
    session.add(job)
    notification = Notification(
        dedupe_key="matrix", event="approved", text="matrix", actor="test", state="failed"
    )
    session.add(notification)
    session.commit()
    release = session.exec(select(Release).where(Release.state == "draft")).first()
    assert release is not None, "the demo data has no draft release"
    app_row = session.get(App, release.app_id)
    item = session.exec(
        select(ReleaseItem)
        .where(ReleaseItem.release_id == release.id, ReleaseItem.mode == "manual")
        .order_by(col(ReleaseItem.id))
    ).first()
    store = session.exec(select(Store).order_by(col(Store.id))).first()
    assert store is not None and store.id is not None
    # A device that has reported: deleting it takes its adoption history with it.
    device = session.exec(
        select(Device).join(DeviceState, col(DeviceState.device_id) == Device.id)
    ).first()
    assert device is not None
    freeze = session.exec(select(StoreFreeze).where(col(StoreFreeze.lifted_at).is_(None))).first()
    incident = session.exec(select(Incident).order_by(col(Incident.id))).first()
    skip = session.exec(select(TrainSkip)).first()
    # The week after the demo's last meeting (not opened: opening it is allowed) and an open
    # action item of the demo's meetings.
    last = session.exec(select(Meeting).order_by(col(Meeting.week_start).desc())).first()
    action = session.exec(select(ActionItem).where(col(ActionItem.closed_at).is_(None))).first()
    assert app_row and item and freeze and incident and skip and last and action
    params = {
        "release_id": release.id,
        "item_id": item.id,
        "slug": app_row.slug,
        "app": app_row.slug,
        "kind": "weekly",
        "external_id": store.external_id,
        "device_id": device.device_id,
        "freeze_id": freeze.id,
        "incident_id": incident.id,
        "token_id": target_token.id,
        "user_id": target_user.id,
        "job_id": job.id,
        "notification_id": notification.id,
        "week_of": skip.week_of.isoformat(),
        "gate": "beta_soak",
        "week": (last.week_start + timedelta(days=7)).isoformat(),
        "action_item_id": action.id,
        "filename": "app.css",
    }
    return World(
        settings=app.config["RELGOV_SETTINGS"],
        params=params,
        item_owner=item.owner_role,
        tokens=tokens,
    )


# --- one seeded database, one copy per principal ---------------------------------------------


def _create_pg(name: str, template: str) -> None:
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        # A copy needs the template to have no session: end any that is still closing.
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :template AND pid <> pg_backend_pid()"
            ),
            {"template": template},
        )
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    admin.dispose()


def _drop_pg(name: str) -> None:
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def world(_template_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("authz")
    base_pg = f"relgov_authz_{os.getpid()}"
    if PG_URL:
        _create_pg(base_pg, PG_TEMPLATE)
        url = _pg_url(base_pg)
    else:
        shutil.copy(_template_database, folder / "base.db")
        url = f"sqlite:///{folder / 'base.db'}"
    settings = Settings(
        env="test",
        instance_path=folder / "instance",
        database_url=url,
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        repo_cache=folder / "repos",
    )
    app = create_app(settings)
    engine = db.make_engine(url, sqlite_transactions=False)
    try:
        with Session(engine, expire_on_commit=False) as session:
            seeded = _seed(app, session)
    finally:
        engine.dispose()
        app.extensions["relgov.engine"].dispose()
    yield seeded
    if PG_URL:
        _drop_pg(base_pg)


_copies = itertools.count()


@pytest.fixture
def principal_app(world: World, tmp_path: Path) -> Iterator[Flask]:
    """A copy of the seeded database and an app on it, for one principal."""
    if PG_URL:
        name = f"relgov_authz_{os.getpid()}_{next(_copies)}"
        _create_pg(name, f"relgov_authz_{os.getpid()}")
        url = _pg_url(name)
    else:
        base = Path(world.settings.database_url.removeprefix("sqlite:///"))
        shutil.copy(base, tmp_path / "principal.db")
        url = f"sqlite:///{tmp_path / 'principal.db'}"
    clear_token_cache()
    application = create_app(replace(world.settings, database_url=url))
    yield application
    application.extensions["relgov.engine"].dispose()
    clear_token_cache()
    if PG_URL:
        _drop_pg(name)


# --- what to send ----------------------------------------------------------------------------

# Valid bodies for the principals the policy lets in, so that their requests do what they
# say (a principal the policy refuses sends an empty body).
API_BODIES: dict[str, Any] = {
    "api.post_app": {"slug": "matrix", "name": "Matrix"},
    "api.patch_app": {"settings": {"name": "Matrix renamed"}},
    "api.post_skip": {"week_of": "2030-01-07", "reason": "matrix"},
    "api.put_template": {
        "items": [{"title": "Matrix check", "owner_role": "qa", "mode": "manual"}]
    },
    "api.post_transition": {"action": "submit", "reason": "matrix"},
    "api.post_sign_off": {"decision": "approve"},
    "api.post_override": {"reason": "matrix"},
    "api.post_meeting": {"held_on": "2026-11-27", "attendees": "A, B", "decision": "go"},
    "api.put_notes": {"markdown": "# Matrix", "loaded_hash": "stale"},
}
FORMS: dict[str, dict[str, str]] = {
    "releases.release_transition": {"action": "submit", "reason": "matrix"},
    "releases.item_sign": {"decision": "approve"},
}
QUERIES: dict[str, dict[str, str]] = {
    "api.update_answer": {"store_id": "x", "device_id": "x", "current_version": "1.0.0"},
}
# Checked first: their answer depends on the release still being open for sign-offs.
FIRST = ("api.post_sign_off", "api.post_override", "releases.item_sign")
# Checked last: they end the session or remove the objects other requests name.
LAST = ("admin.revoke", "admin.edit_user", "auth.logout")
_CSRF_REFUSAL = re.compile(rb"CSRF (session )?token")


def _order(pair: tuple[str, str]) -> tuple[int, str, str]:
    endpoint, method = pair
    rank = 0 if endpoint in FIRST else 2 if endpoint in LAST else 1
    return rank, endpoint, method


def outcome(response: Any) -> str:
    """``allow``, ``deny``, or what went wrong (a server error, a CSRF refusal)."""
    status = response.status_code
    if status >= 500:
        return f"error {status}"
    if status in (401, 403):
        return "deny"
    if status == 400 and _CSRF_REFUSAL.search(response.get_data()):
        return "csrf refused"
    if 300 <= status < 400:
        location = urlparse(response.headers.get("Location", ""))
        if location.path == "/login" and "next" in parse_qs(location.query):
            return "deny"
    return "allow"


Row = tuple[str, str, str]  # endpoint, method, what disagreed


def run_matrix(app: Flask, world: World, principal: Principal) -> tuple[int, list[Row]]:
    """Send every endpoint and method as ``principal``: how many were sent, and the rows
    that disagree with the policy."""
    client = app.test_client()
    headers: dict[str, str] = {}
    if principal.role is not None:
        response = builders.login(client, _email(principal.role))
        assert response.status_code == 302, response.get_data(as_text=True)
        csrf = builders.csrf_header(client, "/")["X-CSRFToken"]
    else:
        csrf = builders.csrf_header(client, "/login")["X-CSRFToken"]
    if principal.scopes:
        headers["Authorization"] = f"Bearer {world.tokens[principal.name]}"
    rules = {r.endpoint: r for r in app.url_map.iter_rules()}
    pairs = sorted(
        ((e, m) for e, methods in policy.endpoint_methods(app).items() for m in methods),
        key=_order,
    )
    rows: list[Row] = []
    for endpoint, method in pairs:
        rule = rules[endpoint]
        with app.test_request_context():
            path = url_for(endpoint, **{k: world.params[k] for k in rule.arguments})
        expected = (
            "allow"
            if policy.rule_for(endpoint, method).allows(
                role=principal.role, scopes=principal.scopes, item_owner=world.item_owner
            )
            else "deny"
        )
        allowed = expected == "allow"
        kwargs: dict[str, Any] = {"headers": dict(headers)}
        if path.startswith("/api/"):
            kwargs["headers"]["X-CSRFToken"] = csrf
            kwargs["query_string"] = QUERIES.get(endpoint, {})
            if method not in ("GET", "DELETE"):
                kwargs["json"] = API_BODIES.get(endpoint, {}) if allowed else {}
        elif method == "POST":
            kwargs["data"] = {**(FORMS.get(endpoint, {}) if allowed else {}), "csrf_token": csrf}
        try:
            response = client.open(path, method=method, **kwargs)
        except Exception as exc:  # the test client re-raises a view's exception
            rows.append((endpoint, method, f"raised {exc!r:.200}"))
            continue
        got = outcome(response)
        response.close()
        if got != expected:
            rows.append(
                (endpoint, method, f"expected {expected}, got {got} ({response.status_code})")
            )
    return len(pairs), rows


@pytest.mark.parametrize("principal", PRINCIPALS, ids=[p.name for p in PRINCIPALS])
def test_every_endpoint_answers_as_the_policy_says(
    principal_app: Flask, world: World, principal: Principal
) -> None:
    sent, rows = run_matrix(principal_app, world, principal)
    assert sent >= len(policy.POLICY)
    assert not rows, f"endpoint, method, as {principal.name}: expected, got\n" + "\n".join(
        f"  {endpoint:32} {method:6} {what}" for endpoint, method, what in rows
    )


def test_every_endpoint_has_a_rule_and_every_rule_an_endpoint(app: Flask) -> None:
    assert policy.problems(app) == []


def test_a_route_without_a_rule_is_refused(settings: Settings, monkeypatch: Any) -> None:
    without = {k: v for k, v in policy.POLICY.items() if k != "ops.metrics"}
    monkeypatch.setattr(policy, "POLICY", without)
    with pytest.raises(policy.PolicyError, match=r"ops\.metrics \(GET\) has no rule"):
        create_app(settings)


def test_the_policy_reads_as_expected() -> None:
    assert policy.rule_for("admin.users", "POST").describe() == "roles admin"
    assert policy.rule_for("apps.app_detail", "HEAD") == policy.LOGIN
    assert policy.READ.allows(role="viewer") and policy.READ.allows(role=None, scopes=["read"])
    assert not policy.token("fleet:write").allows(role="admin")
    sign = policy.rule_for("api.post_sign_off", "POST")
    assert sign.allows(role="qa", item_owner="qa") and not sign.allows(
        role="admin", item_owner="qa"
    )


MOVE_ORDER = (
    "approve",
    "reject",
    "reopen",
    "start_beta",
    "promote",
    "complete",
    "resume",
    "submit",
    "cancel",
    "halt",
)


@pytest.mark.parametrize("principal", PRINCIPALS, ids=[p.name for p in PRINCIPALS])
def test_every_lifecycle_move_answers_as_the_policy_says(
    principal_app: Flask, world: World, principal: Principal
) -> None:
    client = principal_app.test_client()
    headers = {}
    if principal.role is not None:
        assert builders.login(client, _email(principal.role)).status_code == 302
        headers |= builders.csrf_header(client, "/")
    if principal.scopes:
        headers["Authorization"] = f"Bearer {world.tokens[principal.name]}"

    def expected(action: str) -> str:
        allowed = policy.TRANSITIONS[action].allows(role=principal.role, scopes=principal.scopes)
        return "allow" if allowed else "deny"

    rows = []
    # Who may act is checked before the state: a move sent to a release in a state it cannot
    # start from is refused (401/403) for whoever may not take it, and 409 for the others.
    for action in TRANSITIONS:
        sources, _ = TRANSITIONS[action]
        with principal_app.app_context(), db.session_scope() as session:
            release = session.exec(
                select(Release).where(col(Release.state).not_in(sources)).order_by(col(Release.id))
            ).first()
            assert release is not None
            release_id = release.id
        response = client.post(
            f"/api/v1/releases/{release_id}/transitions",
            json={"action": action, "reason": "matrix"},
            headers=headers,
        )
        want = "deny" if expected(action) == "deny" else "409"
        got = outcome(response) if response.status_code != 409 else "409"
        if got != want:
            rows.append(
                (action, f"from a wrong state: expected {want}, got {response.status_code}")
            )

    # Refused moves first, so that an allowed move never uses up the release a refused one
    # needs; then in an order that leaves a release in the state each next move starts from.
    order = list(TRANSITIONS)
    order.sort(key=lambda a: (expected(a) == "allow", MOVE_ORDER.index(a)))
    for action in order:
        sources, _ = TRANSITIONS[action]
        with principal_app.app_context(), db.session_scope() as session:
            # The earliest state a move starts from (then the oldest release), so that a
            # move never takes the only release in a later state that a later move needs.
            release = min(
                session.exec(select(Release).where(col(Release.state).in_(sources))).all(),
                key=lambda r: (STATES.index(r.state), r.id),
                default=None,
            )
            assert release is not None, f"no release to {action} in the demo data"
            release_id = release.id
        response = client.post(
            f"/api/v1/releases/{release_id}/transitions",
            json={"action": action, "reason": "matrix"},
            headers=headers,
        )
        got = outcome(response)
        if got != expected(action):
            rows.append(
                (action, f"expected {expected(action)}, got {got} ({response.status_code})")
            )
    assert not rows, f"move, as {principal.name}: expected, got\n" + "\n".join(
        f"  {action:12} {what}" for action, what in rows
    )


def test_callers_without_credentials_are_refused_before_their_body_is_read(
    app: Flask, client: FlaskClient
) -> None:
    rules = {r.endpoint: r for r in app.url_map.iter_rules()}
    params: dict[str, Any] = {
        "release_id": 1,
        "item_id": 1,
        "freeze_id": 1,
        "incident_id": 1,
        "notification_id": 1,
        "user_id": 1,
        "token_id": 1,
        "action_item_id": 1,
    }
    early = []
    for endpoint, methods in sorted(policy.endpoint_methods(app).items()):
        for method in sorted(methods - {"GET"}):
            if policy.rule_for(endpoint, method).public or not endpoint.startswith("api."):
                continue
            with app.test_request_context():
                path = url_for(
                    endpoint, **{k: params.get(k, "x") for k in rules[endpoint].arguments}
                )
            response = client.open(path, method=method, json={"unexpected": True})
            if response.status_code != 401:
                early.append(endpoint)
    assert early == [], "these read the body before refusing a caller without credentials"
