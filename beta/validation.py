"""Field rules shared by the store functions and the CSV import.

Pure module: no Session, no I/O. Each ``check_*`` function returns the normalised value or
raises :class:`~beta.errors.InvalidInput` naming the field. :data:`DEVICE_ID_RE` with
:func:`device_id_refusal` (the heartbeats of ``version_monitor``) and :func:`device_id_field`
(the update answer) are :func:`check_device_id` for a pydantic model: one device-id rule, one
message, wherever a device id comes in.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import time
from zoneinfo import ZoneInfo, available_timezones

from pydantic_core import PydanticCustomError

from beta.errors import InvalidInput
from beta.models import DEVICE_KINDS

EXTERNAL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_EXTERNAL_ID_RULE = "1–64 characters: letters, digits, '.', '_' or '-'"
DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_DEVICE_ID_RULE = "1–128 characters: letters, digits, '.', '_', ':' or '-'"
WINDOW_TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
# Tags are free text such as "franchise:sakura" or "hw:gen3", but never contain the CSV
# separators or control characters, so they survive a round trip through the import.
_TAG_FORBIDDEN = re.compile(r"[;,\x00-\x1f\x7f]")
MAX_TAGS = 32
MAX_TAG_LENGTH = 64
MAX_NAME_LENGTH = 200
MAX_REGION_LENGTH = 64
MAX_REASON_LENGTH = 1000
DEFAULT_TIMEZONE = "Asia/Tokyo"
DEFAULT_WINDOW_START = "02:00"
DEFAULT_WINDOW_END = "05:00"


@functools.cache
def _known_timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def _stripped(
    value: str,
    *,
    field: str,
    required: str | None = None,
    what: str = "",
    max_length: int | None = None,
) -> str:
    """``value`` without surrounding white space (``None`` counts as empty).

    ``required`` is the message when it is empty (else empty is allowed); ``max_length``
    the most characters it may have, the message naming it ``what``.
    """
    text = (value or "").strip()
    if required is not None and not text:
        raise InvalidInput(required, field=field)
    if max_length is not None and len(text) > max_length:
        raise InvalidInput(f"{what} is longer than {max_length} characters", field=field)
    return text


def _identifier(value: str, field: str, what: str, pattern: re.Pattern[str], rule: str) -> str:
    text = _stripped(value, field=field, required=f"{what} is required")
    if not pattern.match(text):
        raise InvalidInput(
            f"{what} {text!r} must be {rule}, starting with a letter or digit", field=field
        )
    return text


def check_external_id(value: str, *, field: str = "external_id") -> str:
    return _identifier(value, field, "store id", EXTERNAL_ID_RE, _EXTERNAL_ID_RULE)


def check_device_id(value: str, *, field: str = "device_id") -> str:
    return _identifier(value, field, "device id", DEVICE_ID_RE, _DEVICE_ID_RULE)


def device_id_field(value: str) -> str:
    """:func:`check_device_id` as a pydantic validator (``AfterValidator``): the same rule,
    refused with the same message."""
    try:
        return check_device_id(value)
    except InvalidInput as error:
        raise PydanticCustomError("device_id", error.message) from None


def device_id_refusal(value: str) -> str:
    """What :func:`check_device_id` says of ``value``, which :data:`DEVICE_ID_RE` refused (for
    a model that checks the pattern itself, as the heartbeats do, many at a time)."""
    try:
        check_device_id(value)
    except InvalidInput as error:
        return error.message
    return f"device id {value!r} is not valid"  # only when the caller's check differs


def check_device_kind(value: str, *, field: str = "kind") -> str:
    text = _stripped(value, field=field).lower()
    if text not in DEVICE_KINDS:
        raise InvalidInput(
            f"device kind {value!r} is not one of {', '.join(DEVICE_KINDS)}", field=field
        )
    return text


def check_name(value: str, *, field: str = "name") -> str:
    return _stripped(
        value, field=field, required="name is required", what="name", max_length=MAX_NAME_LENGTH
    )


def check_label(value: str, *, field: str = "label") -> str:
    return _stripped(value, field=field, what="label", max_length=MAX_NAME_LENGTH)


def check_region(value: str, *, field: str = "region") -> str:
    return _stripped(value, field=field, what="region", max_length=MAX_REGION_LENGTH)


def check_timezone(value: str, *, field: str = "timezone") -> str:
    """An IANA time zone name such as ``Asia/Tokyo`` (not an offset like ``+09:00``)."""
    text = _stripped(value, field=field, required="time zone is required")
    if text not in _known_timezones():
        raise InvalidInput(
            f"{text!r} is not an IANA time zone (expected a name like Asia/Tokyo or "
            "America/Los_Angeles)",
            field=field,
        )
    ZoneInfo(text)  # known names always load; this keeps the two checks honest
    return text


def check_window_time(value: str, *, field: str) -> str:
    text = _stripped(value, field=field)
    if not WINDOW_TIME_RE.match(text):
        raise InvalidInput(f"{value!r} is not a time of day as HH:MM (00:00–23:59)", field=field)
    return text


def check_window(start: str, end: str) -> tuple[str, str]:
    """An update window in local time; ``end`` before ``start`` means it crosses midnight."""
    start = check_window_time(start, field="update_window_start")
    end = check_window_time(end, field="update_window_end")
    if start == end:
        raise InvalidInput(
            "the update window must not be empty (start and end are equal)",
            field="update_window_end",
        )
    return start, end


def parse_window_time(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def check_tags(values: Iterable[str], *, field: str = "tags") -> list[str]:
    """Strip, drop empties and duplicates (first occurrence wins, order kept)."""
    if isinstance(values, str):
        raise InvalidInput("tags must be a list of strings", field=field)
    tags: list[str] = []
    for raw in values:
        if not isinstance(raw, str):
            raise InvalidInput("tags must be a list of strings", field=field)
        tag = raw.strip()
        if not tag or tag in tags:
            continue
        if len(tag) > MAX_TAG_LENGTH:
            raise InvalidInput(
                f"tag {tag[:20]!r}… is longer than {MAX_TAG_LENGTH} characters", field=field
            )
        if _TAG_FORBIDDEN.search(tag):
            raise InvalidInput(
                f"tag {tag!r} must not contain ';', ',' or control characters", field=field
            )
        tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"a store has at most {MAX_TAGS} tags", field=field)
    return tags


def check_reason(value: str, *, field: str = "reason") -> str:
    return _stripped(
        value,
        field=field,
        required="a reason is required",
        what="reason",
        max_length=MAX_REASON_LENGTH,
    )


def check_actor(value: str, *, field: str = "actor") -> str:
    return _stripped(value, field=field, required="an actor is required")[:200]
