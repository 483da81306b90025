"""A token's owner answers for it: disabling the owner suspends their tokens, re-enabling them
does not resume those, and an admin hands a token to another owner, which resumes it."""

from __future__ import annotations

import pytest
from sqlmodel import select

from service.auth import AuthError, hand_over_token, update_user
from service.models import ApiToken, AuditEvent, User
from tests.builders import api_headers, make_user, post_form

STORE = "/api/v1/stores"


@pytest.fixture
def leaver(session, admin) -> User:
    return make_user(session, email="leaver@example.com", role="admin", name="Leaving Admin")


@pytest.fixture
def fleet_token(session, leaver) -> dict[str, str]:
    return api_headers(session, creator=leaver, scopes=["fleet:write"], name="store sync")


def _store(client, headers, n: int):
    return client.post(STORE, json={"external_id": f"S{n}", "name": f"Store {n}"}, headers=headers)


def _disable(admin_client, user: User):
    return post_form(
        admin_client, f"/admin/users/{user.id}", {"name": user.name, "role": user.role}
    )


def _token(session) -> ApiToken:
    session.expire_all()
    return session.exec(select(ApiToken).where(ApiToken.name == "store sync")).one()


def test_disabling_the_owner_suspends_the_tokens_they_issued(
    admin_client, client, session, leaver, fleet_token
):
    assert _store(client, fleet_token, 1).status_code == 201
    assert _disable(admin_client, leaver).status_code == 302
    refused = _store(client, fleet_token, 2)
    assert refused.status_code == 401
    assert refused.json["error"]["message"] == (
        "this token is suspended: its owner leaver@example.com was disabled; "
        "an admin can hand it to another owner"
    )
    assert "invalid_token" in refused.headers["WWW-Authenticate"]
    assert client.get("/api/v1/me", headers=fleet_token).status_code == 401
    token = _token(session)
    assert token.suspended_at is not None and token.revoked_at is None
    events = session.exec(select(AuditEvent).where(AuditEvent.action == "token.suspend")).all()
    assert [(e.actor, e.subject_id, e.highlight) for e in events] == [
        ("user:admin@example.com", str(token.id), True)
    ]
    update = session.exec(select(AuditEvent).where(AuditEvent.action == "user.update")).one()
    assert update.after["tokens_suspended"] == 1
    page = admin_client.get("/admin/tokens").get_data(as_text=True)
    assert "1 suspended token" in page
    assert "its owner leaver@example.com was disabled" in page


def test_re_enabling_the_owner_leaves_the_tokens_suspended(
    admin_client, client, session, leaver, fleet_token
):
    _disable(admin_client, leaver)
    response = post_form(
        admin_client,
        f"/admin/users/{leaver.id}",
        {"name": leaver.name, "role": "admin", "active": "y"},
    )
    assert response.status_code == 302
    session.refresh(leaver)
    assert leaver.active
    assert _store(client, fleet_token, 1).status_code == 401
    assert _token(session).suspended_at is not None


def test_an_admin_hands_a_suspended_token_to_another_owner(
    admin, admin_client, client, session, leaver, fleet_token
):
    _disable(admin_client, leaver)
    token = _token(session)
    response = post_form(
        admin_client,
        f"/admin/tokens/{token.id}/owner",
        {"owner_id": admin.id},
        page="/admin/tokens",
    )
    assert response.status_code == 302
    assert "store sync now belongs to admin@example.com; it works again." in admin_client.get(
        "/admin/tokens"
    ).get_data(as_text=True)
    assert _store(client, fleet_token, 1).status_code == 201
    token = _token(session)
    assert (token.owner_id, token.created_by_id) == (admin.id, leaver.id)
    assert token.suspended_at is None and token.suspended_reason is None
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "token.hand_over")).one()
    assert event.actor == "user:admin@example.com"
    assert event.before == {"owner": "leaver@example.com", "suspended": True}
    assert event.after == {"owner": "admin@example.com", "suspended": False}
    # The new owner answers for it now: disabling the old one again changes nothing.
    update_user(session=session, user=leaver, actor="test", active=False)
    session.commit()
    assert _store(client, fleet_token, 2).status_code == 201


def test_a_token_goes_only_to_an_active_admin(admin, admin_client, session, leaver, fleet_token):
    viewer = make_user(session, email="viewer@example.com", role="viewer")
    token = _token(session)
    response = post_form(
        admin_client,
        f"/admin/tokens/{token.id}/owner",
        {"owner_id": viewer.id},
        page="/admin/tokens",
    )
    assert response.status_code == 302
    page = admin_client.get("/admin/tokens").get_data(as_text=True)
    assert "Not handed over: viewer@example.com is not an active admin" in page
    assert _token(session).owner_id == leaver.id
    update_user(session=session, user=leaver, actor="test", active=False)
    session.commit()
    with pytest.raises(AuthError, match="not an active admin"):
        hand_over_token(session=session, token=_token(session), owner=leaver, actor="test")
    session.rollback()


def test_revoked_tokens_are_not_suspended_and_cannot_be_handed_over(
    admin, admin_client, session, leaver, fleet_token
):
    token = _token(session)
    post_form(admin_client, f"/admin/tokens/{token.id}/revoke", {}, page="/admin/tokens")
    _disable(admin_client, leaver)
    token = _token(session)
    assert token.revoked_at is not None and token.suspended_at is None
    with pytest.raises(AuthError, match="revoked"):
        hand_over_token(session=session, token=token, owner=admin, actor="test")
    session.rollback()


def test_cli_lists_and_hands_over_tokens(admin, runner, client, session, leaver, fleet_token):
    result = runner.invoke(args=["users", "disable", "--email", leaver.email])
    assert result.exit_code == 0, result.output
    listed = runner.invoke(args=["tokens", "list"])
    assert "store sync" in listed.output
    assert "suspended (its owner leaver@example.com was disabled)" in listed.output
    token = _token(session)
    handed = runner.invoke(args=["tokens", "hand-over", str(token.id), "--to", admin.email])
    assert handed.exit_code == 0, handed.output
    assert f"token {token.id} (store sync) now belongs to admin@example.com" in handed.output
    assert _store(client, fleet_token, 1).status_code == 201
    refused = runner.invoke(args=["tokens", "hand-over", str(token.id), "--to", leaver.email])
    assert refused.exit_code == 2 and "not an active admin" in refused.output
