"""Builders for test data, instead of copy-pasted setup."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session

from service import jobs
from service.auth import create_user, issue_token
from service.jobs.models import Job
from service.models import User
from service.releases.models import App, Release

PASSWORD = "correct-horse-battery"
_CSRF = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"'
)
_META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def make_user(
    session: Session,
    *,
    email: str = "anna@example.com",
    role: str = "admin",
    name: str = "",
    password: str = PASSWORD,
) -> User:
    user = create_user(
        session=session, email=email, name=name, role=role, password=password, actor="test"
    )
    session.commit()
    return user


def make_token(session: Session, *, creator: User, scopes: list[str], name: str = "ci") -> str:
    _, raw = issue_token(session=session, name=name, scopes=scopes, creator=creator)
    session.commit()
    return raw


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header of an API client with ``token``."""
    return {"Authorization": f"Bearer {token}"}


def api_headers(
    session: Session, *, creator: User, scopes: list[str], name: str = "ci"
) -> dict[str, str]:
    """A new token with ``scopes``, as the header an API client sends it in."""
    return bearer(make_token(session, creator=creator, scopes=scopes, name=name))


def add_release(session: Session, app: App, version: str, state: str, **fields: Any) -> Release:
    """A release of ``app`` put straight into ``state`` (no lifecycle), committed."""
    assert app.id is not None
    release = Release(app_id=app.id, version=version, state=state, created_by="test", **fields)
    session.add(release)
    session.commit()
    return release


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    html = client.get(path).get_data(as_text=True)
    match = _CSRF.search(html)
    assert match, f"no csrf token on {path}"
    return match.group(1) or match.group(2)


def csrf_header(client: FlaskClient, path: str = "/") -> dict[str, str]:
    """The ``X-CSRFToken`` header the pages' scripts send with person-only API calls: the
    token of the page's ``<meta name="csrf-token">``."""
    html = client.get(path).get_data(as_text=True)
    match = _META_CSRF.search(html)
    assert match, f"no csrf-token meta tag on {path}"
    return {"X-CSRFToken": match.group(1)}


def login(client: FlaskClient, email: str, password: str = PASSWORD) -> Any:
    token = csrf_token(client)
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def post_form(
    client: FlaskClient, path: str, data: dict[str, Any], *, page: str | None = None
) -> Any:
    """Submit a form the way a browser does: with the CSRF token of the page it sits on."""
    token = csrf_token(client, page or path)
    return client.post(path, data={**data, "csrf_token": token})


def run_jobs(app: Flask) -> list[Job]:
    """Run every due job (release notes from git, say) as the worker would; return them as
    they ended."""
    done = []
    while (job := jobs.run_once(app)) is not None:
        done.append(job)
    return done
