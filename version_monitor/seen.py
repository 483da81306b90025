"""When a device was last seen, kept so that most heartbeats rewrite no index entry.

Every heartbeat moves a device's ``last_seen``. The report indexes on ``device_state`` hold
``seen_hour`` instead (``last_seen`` truncated to the hour), which moves once an hour: a
heartbeat that changes nothing else updates the row alone. Reports still test ``last_seen``
exactly. For a cutoff ``t`` in hour ``h``, ``last_seen >= t`` is ``seen_hour > h``, or
``seen_hour = h`` and ``last_seen >= t``: the index answers the first, and only the rows of
devices last seen in hour ``h`` (few, for a cutoff a day or a week back) are read from the
table (SQLite seeks a row only when the expression needs its column).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_


def seen_hour(moment: datetime) -> datetime:
    """``moment`` truncated to the hour: the ``seen_hour`` of a device last seen then."""
    return moment.replace(minute=0, second=0, microsecond=0)


def seen_since(table: Any, moment: datetime) -> ColumnElement[bool]:
    """``table.last_seen >= moment``, in a form the ``seen_hour`` indexes serve."""
    hour = seen_hour(moment)
    if hour == moment:
        return table.c.seen_hour >= hour  # type: ignore[no-any-return]
    return or_(
        table.c.seen_hour > hour, and_(table.c.seen_hour == hour, table.c.last_seen >= moment)
    )


def seen_before(table: Any, moment: datetime) -> ColumnElement[bool]:
    """``table.last_seen < moment``, in a form the ``seen_hour`` indexes serve."""
    hour = seen_hour(moment)
    if hour == moment:
        return table.c.seen_hour < hour  # type: ignore[no-any-return]
    return or_(
        table.c.seen_hour < hour, and_(table.c.seen_hour == hour, table.c.last_seen < moment)
    )
