"""Hostile input: security headers on every response, login throttling, and requests that
would reach the database with values it cannot hold.

* Headers: a Content-Security-Policy that allows scripts and styles only from this origin
  (no inline script, no inline style, no framing), ``X-Content-Type-Options: nosniff``,
  ``X-Frame-Options: DENY``, ``Referrer-Policy: same-origin`` and, when
  ``RELGOV_HSTS_SECONDS`` is set, ``Strict-Transport-Security``. Page behaviour lives in
  ``static/app.js``; data for scripts travels in ``data-*`` attributes or
  ``<script type="application/json">`` blocks, which are never executed. Every answer to a
  logged-in person or to a request authenticated by an API token (static files aside) carries
  ``Cache-Control: no-store``: no browser or proxy keeps a copy of a page, an API answer or a
  token shown once (the heartbeat fast path sends it too).
* Login throttling: failed logins are audit events (``user.login_failed``, their actor the
  client address), so the count is shared by every worker and machine. After
  ``RELGOV_LOGIN_MAX_FAILURES`` failures for one email from one client address, logging in to
  that email from that address is paused; after ``RELGOV_LOGIN_MAX_FAILURES_PER_ADDRESS``
  failures from one address (any emails), every login from it is paused. A pause refuses
  attempts with 429 and ``Retry-After`` (even with the right password) until enough failures
  are older than ``RELGOV_LOGIN_WINDOW_MINUTES``. So someone who knows a person's email
  pauses that person's login only from the address they fail from, not from the person's
  own. A successful login, or an admin lifting the pause (``user.login_unlocked``), clears
  the account's counts from every address (earlier failures no longer count).
* Ids in URLs are bounded to what an INTEGER column holds (a larger one is unknown, named as
  given), and NUL characters (which PostgreSQL text cannot store) are refused before any
  query runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app, g, request
from sqlalchemy import func
from sqlmodel import Session, col, select
from werkzeug.routing import IntegerConverter
from werkzeug.wrappers import Response

import utc
from service import audit
from service.api import json_body
from service.api.errors import ApiError, error_response, field_error
from service.models import AuditEvent, utcnow

MAX_ID = 2**31 - 1  # PostgreSQL INTEGER; a larger id in a URL is simply not found

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        # Chart.js sizes its canvas through the CSSOM (element.style), which CSP allows;
        # no page has a style attribute or a <style> element.
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}

LOGIN_FAILED = "user.login_failed"
LOGIN_LOCKED = "user.login_locked"
LOGIN_OK = "user.login"
LOGIN_UNLOCKED = "user.login_unlocked"  # an admin lifted the account's pauses
_ADDRESS_ACTOR = "anonymous@"


class UnknownId(int):
    """An id from a URL beyond what an INTEGER column holds: 0 to the database (no row has
    it), the digits as given in every message (``no release 99999999999999999999999``)."""

    text: str

    def __new__(cls, text: str) -> UnknownId:
        self = super().__new__(cls, 0)
        self.text = text
        return self

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return self.text if not spec else format(self.text, spec)


class BoundedIntegerConverter(IntegerConverter):
    """``<int:...>`` whose ids beyond what an INTEGER column holds become an
    :class:`UnknownId`: an API operation answers 404 naming the id as given without a query
    (``service/api/operations.py``), a page finds no row. (Refusing the match instead would
    make Werkzeug answer 405 where another method shares the path.)"""

    def to_python(self, value: str) -> Any:
        number = super().to_python(value)
        return number if isinstance(number, int) and abs(number) <= MAX_ID else UnknownId(value)


def init_app(app: Flask) -> None:
    """Call before any blueprint is registered (the converter applies to rules added later)."""
    app.url_map.converters["int"] = BoundedIntegerConverter
    app.extensions[_HEADERS_KEY] = [
        (name.lower(), name, value) for name, value in response_headers(app).items()
    ]
    app.before_request(_refuse_nul)
    app.after_request(_set_headers)


_HEADERS_KEY = "relgov.security_headers"


def response_headers(app: Flask) -> dict[str, str]:
    """The headers every response of ``app`` carries: :data:`HEADERS`, and HSTS when
    ``RELGOV_HSTS_SECONDS`` is set."""
    headers = dict(HEADERS)
    hsts = app.config["RELGOV_SETTINGS"].hsts_seconds
    if hsts:
        headers["Strict-Transport-Security"] = f"max-age={hsts}"
    return headers


NO_STORE = ("Cache-Control", "no-store")


def _set_headers(response: Response) -> Response:
    # (lower-case name, name, value) rows made once per app: one pass over the response's
    # headers instead of a setdefault (a scan) per header: 4 µs a response instead of 14.
    headers = response.headers
    present = {name.lower() for name, _ in headers}
    missing = [
        (name, value)
        for low, name, value in current_app.extensions[_HEADERS_KEY]
        if low not in present
    ]
    if missing:
        headers.extend(missing)
    if _authenticated():
        headers[NO_STORE[0]] = NO_STORE[1]
    return response


def _authenticated() -> bool:
    """Whether the answer is for a bearer token or a logged-in person (not a static file).

    The person is the one Flask-Login loaded for this request (``g._login_user``: every
    request with a login cookie loads it before the view, see ``service.auth``); reading it
    here never queries the database, which may be the reason this answer is an error."""
    if g.get("api_token") is not None:
        return True
    user = g.get("_login_user")
    return user is not None and bool(user.is_authenticated) and request.endpoint != "static"


def _refuse_nul() -> Response | None:
    """A NUL character in the path, query, form or JSON body is refused before any view runs
    (the body is only parsed again here when its bytes hold a ``\\u0000`` escape)."""
    where = None
    if "\x00" in request.path:
        where = "path"
    elif request.path.startswith("/api/") and request.is_json:
        where = _json_nul()
    if where is None:
        for source, values in (("query", request.args), ("form", request.form)):
            for name, value in values.items(multi=True):
                if "\x00" in name or "\x00" in value:
                    where = f"{source}.{name.replace(chr(0), '')}"
                    break
            if where:
                break
    if where is None:
        return None
    message = "must not contain NUL characters"
    if request.path.startswith("/api/"):
        if where == "path":
            return error_response(
                ApiError(404, "not_found", f"no API endpoint at {request.path!r}")
            )
        return error_response(field_error(where.split(".", 1)[1], message))
    return Response(f"Bad request: {where} {message}.", 400, mimetype="text/plain")


def _json_nul() -> str | None:
    raw = request.get_data(cache=True)
    if b"\\u0000" not in raw:
        return None  # a raw NUL byte is not JSON: the view answers 400
    try:
        data = json_body.parse(raw)
    except json_body.InvalidJson:
        return None  # the view answers 400
    found = contains_nul(data)
    return f"body.{found}" if found else None


def contains_nul(value: Any, path: str = "") -> str | None:
    """The JSON path of the first string (or key) holding a NUL character, or None."""
    if isinstance(value, str):
        return (path or "body") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return here.replace("\x00", "")
            found = contains_nul(item, here)
            if found:
                return found
    if isinstance(value, list):
        for n, item in enumerate(value):
            found = contains_nul(item, f"{path}.{n}" if path else str(n))
            if found:
                return found
    return None


# --- login throttling ----------------------------------------------------------------


@dataclass(frozen=True)
class LoginRefusal:
    reason: str  # "account" or "address"
    retry_after: int  # seconds

    @property
    def message(self) -> str:
        minutes = max(1, math.ceil(self.retry_after / 60))
        about = f"about {minutes} minute{'s' if minutes != 1 else ''}"
        if self.reason == "account":
            return (
                "Too many failed logins for this account from your network address. Logging "
                f"in to it from there is paused for {about}; try again then, or ask an admin "
                "to lift the pause."
            )
        return (
            "Too many failed logins from your network address. Logging in from there is "
            f"paused for {about}; try again then, or ask an admin."
        )


def address_actor(address: str | None) -> str:
    return f"{_ADDRESS_ACTOR}{address or 'unknown'}"


def _limits() -> tuple[int, int, timedelta]:
    settings = current_app.config["RELGOV_SETTINGS"]
    return (
        settings.login_max_failures,
        settings.login_max_failures_per_address,
        timedelta(minutes=settings.login_window_minutes),
    )


def _failures(
    session: Session, since: datetime, limit: int, after: datetime | None = None, **where: str
) -> list[datetime]:
    """Times of the newest ``limit`` failures since ``since`` and strictly after ``after``
    (newest first)."""
    query = select(AuditEvent.at).where(
        AuditEvent.action == LOGIN_FAILED, col(AuditEvent.at) >= since
    )
    if after is not None:
        query = query.where(col(AuditEvent.at) > after)
    if "email" in where:
        query = query.where(
            AuditEvent.subject_type == "user", AuditEvent.subject_id == where["email"]
        )
    if "actor" in where:
        query = query.where(AuditEvent.actor == where["actor"])
    rows = session.exec(query.order_by(col(AuditEvent.at).desc()).limit(limit)).all()
    return list(rows)


def _last_reset(session: Session, email: str) -> datetime | None:
    """The last successful login to ``email`` or lifting of its pauses: failures before it
    do not count."""
    return session.exec(
        select(func.max(AuditEvent.at)).where(
            col(AuditEvent.action).in_((LOGIN_OK, LOGIN_UNLOCKED)),
            AuditEvent.subject_type == "user",
            AuditEvent.subject_id == email,
        )
    ).first()


def login_refusal(
    session: Session, *, email: str, address: str | None, now: datetime | None = None
) -> LoginRefusal | None:
    """Whether a login attempt must be refused before its password is even checked."""
    per_account, per_address, window = _limits()
    email = email[:128]
    now = now or utcnow()
    since = now - window
    if per_account:
        times = _failures(
            session,
            since,
            per_account,
            after=_last_reset(session, email),
            email=email,
            actor=address_actor(address),
        )
        if len(times) >= per_account:
            return LoginRefusal("account", _seconds_until(times[-1] + window, now))
    if per_address:
        times = _failures(session, since, per_address, actor=address_actor(address))
        if len(times) >= per_address:
            return LoginRefusal("address", _seconds_until(times[-1] + window, now))
    return None


@dataclass(frozen=True)
class LoginPause:
    """Logging in to an account from ``address`` is paused for ``retry_after`` seconds."""

    address: str
    failures: int
    retry_after: int


def login_pauses(session: Session, email: str, now: datetime | None = None) -> list[LoginPause]:
    """The addresses from which logging in to ``email`` is paused now (for the admin)."""
    return paused_accounts(session, now, email=email[:128]).get(email[:128], [])


def paused_accounts(
    session: Session, now: datetime | None = None, *, email: str | None = None
) -> dict[str, list[LoginPause]]:
    """Every account (email) whose login is paused from some address now, with the pauses;
    only ``email``'s when given. Two queries, whatever the number of accounts."""
    per_account, _, window = _limits()
    if not per_account:
        return {}
    now = now or utcnow()
    since = now - window
    failures = select(AuditEvent.subject_id, AuditEvent.actor, AuditEvent.at).where(
        AuditEvent.action == LOGIN_FAILED,
        AuditEvent.subject_type == "user",
        col(AuditEvent.at) >= since,
    )
    resets = (
        select(AuditEvent.subject_id, func.max(AuditEvent.at))
        .where(
            col(AuditEvent.action).in_((LOGIN_OK, LOGIN_UNLOCKED)),
            AuditEvent.subject_type == "user",
            col(AuditEvent.at) >= since,
        )
        .group_by(AuditEvent.subject_id)
    )
    if email is not None:
        failures = failures.where(AuditEvent.subject_id == email)
        resets = resets.where(AuditEvent.subject_id == email)
    reset_at = {subject: utc.aware(at) for subject, at in session.exec(resets).all()}
    times: dict[tuple[str, str], list[datetime]] = {}
    for subject, actor, at in session.exec(failures).all():
        reset = reset_at.get(subject)
        if reset is None or utc.aware(at) > reset:
            times.setdefault((subject, actor), []).append(utc.aware(at))
    paused: dict[str, list[LoginPause]] = {}
    for (subject, actor), moments in sorted(times.items()):
        if len(moments) >= per_account:
            moments.sort(reverse=True)
            paused.setdefault(subject, []).append(
                LoginPause(
                    address=actor.removeprefix(_ADDRESS_ACTOR),
                    failures=len(moments),
                    retry_after=_seconds_until(moments[per_account - 1] + window, now),
                )
            )
    return paused


def lift_login_pauses(session: Session, *, email: str, actor: str) -> list[LoginPause]:
    """An admin lifts the pauses on logging in to ``email`` (from every address): the
    failures so far no longer count. Audited as ``user.login_unlocked``."""
    lifted = login_pauses(session, email)
    audit.record(
        session,
        actor=actor,
        action=LOGIN_UNLOCKED,
        subject_type="user",
        subject_id=email[:128],
        after={"addresses": [pause.address for pause in lifted]},
        summary="lifted the login pause"
        + (f" (from {', '.join(p.address for p in lifted)})" if lifted else " (none was on)"),
    )
    return lifted


def _seconds_until(moment: datetime, now: datetime) -> int:
    # SQLite hands back naive UTC.
    return max(1, math.ceil((utc.aware(moment) - now).total_seconds()))


def record_failure(session: Session, *, email: str, address: str | None) -> LoginRefusal | None:
    """Audit a failed login; when it reaches a limit, audit the lockout too and return it."""

    def attempt(action: str, summary: str, **after: object) -> None:
        audit.record(
            session,
            actor=address_actor(address),
            action=action,
            subject_type="user",
            subject_id=email[:128],
            after={"address": address, **after},
            summary=summary,
            highlight=action == LOGIN_LOCKED,
        )

    attempt(LOGIN_FAILED, "failed login")
    session.flush()
    refusal = login_refusal(session, email=email[:128], address=address)
    if refusal is not None:
        attempt(
            LOGIN_LOCKED,
            f"logins paused for {refusal.retry_after} s (too many failures by {refusal.reason})",
            by=refusal.reason,
            seconds=refusal.retry_after,
        )
    return refusal
