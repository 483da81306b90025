"""When a device was last seen, kept so that most heartbeats rewrite no index entry.

Every heartbeat moves a device's ``last_seen``. The report indexes on ``device_state`` hold
``seen_hour`` instead (``last_seen`` truncated to the hour), which moves once an hour: a
heartbeat that changes nothing else updates the row alone. Reports still test ``last_seen``
exactly. For a cutoff ``t`` in hour ``h``, ``last_seen >= t`` is ``seen_hour > h``, or
``seen_hour = h`` and ``last_seen >= t``: an index answers the first, and only the rows of
devices last seen in hour ``h`` (few, for a cutoff a day or a week back) are read from the
table (SQLite seeks a row only when the expression needs one of its columns). Conditions
most devices meet (:func:`seen_since`) are given to PostgreSQL as ``last_seen >= t``: it
scans the table for them either way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ColumnElement, and_, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


def seen_hour(moment: datetime) -> datetime:
    """``moment`` truncated to the hour: the ``seen_hour`` of a device last seen then."""
    return moment.replace(minute=0, second=0, microsecond=0)


class unindexed(FunctionElement[Any]):
    """``column`` as SQLite's ``+column``: the same value, in a form its query planner does
    not pick an index for (SQLite's documented way). Used only in SQL for SQLite."""

    inherit_cache = True
    name = "unindexed"

    def __init__(self, column: ColumnElement[Any]) -> None:
        super().__init__(column)
        self.type = column.type  # binds are processed as the column's (datetimes as text)


@compiles(unindexed, "sqlite")
def _sqlite_unindexed(element: unindexed, compiler: Any, **kw: Any) -> str:
    return f"+{compiler.process(element.clauses, **kw)}"


class _OnSQLite(FunctionElement[bool]):
    """The first condition, or on SQLite the second (the same rows, another plan)."""

    inherit_cache = True
    name = "on_sqlite"
    type = Boolean()
    _is_implicitly_boolean = True  # a condition: no "= 1" where booleans are integers


@compiles(_OnSQLite)
def _first(element: _OnSQLite, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.clauses.clauses[0], **kw)})"


@compiles(_OnSQLite, "sqlite")
def _second(element: _OnSQLite, compiler: Any, **kw: Any) -> str:
    return f"({compiler.process(element.clauses.clauses[1], **kw)})"


def seen_since(table: Any, moment: datetime) -> ColumnElement[bool]:
    """``table.last_seen >= moment``, for a condition most devices meet (seen within a day
    or a week): the query reads them all, grouped.

    PostgreSQL gets it as written (it scans the table). SQLite scans the covering index the
    query groups by and reads a table row only for devices last seen in ``moment``'s hour;
    ``seen_hour`` is :class:`unindexed` there, or its planner walks the ``seen_hour`` index
    and sorts (half the speed)."""
    hour = seen_hour(moment)
    column = unindexed(table.c.seen_hour)
    covered = (
        column >= hour
        if hour == moment
        else or_(column > hour, and_(column == hour, table.c.last_seen >= moment))
    )
    return _OnSQLite(table.c.last_seen >= moment, covered)


def seen_before(table: Any, moment: datetime) -> ColumnElement[bool]:
    """``table.last_seen < moment``, for a condition few devices meet (offline): the
    ``seen_hour`` index finds them, and a table row is read for each."""
    hour = seen_hour(moment)
    if hour == moment:
        return table.c.seen_hour < hour  # type: ignore[no-any-return]
    # The range on its own, for the planner (it does not draw one from the OR alone).
    return and_(
        table.c.seen_hour <= hour, or_(table.c.seen_hour < hour, table.c.last_seen < moment)
    )
