"""Who is calling an endpoint that acts for a person (a sign-off, an approval, an override).

A machine's bearer token cannot sign a checklist item: those endpoints take the person's
logged-in session (the same cookie as the web UI) and, for writes, the page's CSRF token in an
``X-CSRFToken`` header (``<meta name="csrf-token">`` on every page). Requests that carry a
bearer token are authenticated as usual and then refused with 403 where a person is needed.
"""

from __future__ import annotations

from flask import g, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms import ValidationError

from service.api.errors import ApiError
from service.api.tokens import authenticate
from service.models import SCOPES, User

PERSON_NOTE = (
    " Acts for a person: call it with a logged-in session and, for writes, the page's CSRF "
    "token in an X-CSRFToken header. Bearer tokens are refused with 403."
)


def require_person() -> User:
    """The logged-in person making this request, or an ApiError (401/403; 400 without the
    CSRF token). Checked once a request: the operation decorator does it before the body is
    read (``service/api/operations.py``), and the view asks again for the person."""
    found: User | None = g.get("api_person")
    if found is not None:
        return found
    if request.headers.get("Authorization"):
        authenticate(SCOPES, request.method)  # an unknown, revoked or expired token is 401
        raise ApiError(
            403,
            "forbidden",
            "this action is taken by a person, not a token: use a logged-in session",
        )
    if not current_user.is_authenticated:
        raise ApiError(
            401, "unauthorized", "log in first: this action is taken by a person (session cookie)"
        )
    if request.method not in ("GET", "HEAD"):
        try:
            validate_csrf(request.headers.get("X-CSRFToken", ""))
        except (ValidationError, CSRFError) as exc:
            raise ApiError(
                400, "csrf", f"send the page's CSRF token in X-CSRFToken ({exc})"
            ) from None
    user: User = current_user._get_current_object()
    g.api_person = user
    return user
