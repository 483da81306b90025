"""UTC datetimes, naive and aware: the one place that converts between them.

Pure module: no I/O. ``beta``'s tables (SQLModel's ``UTCDateTime``) take and return aware
UTC datetimes; ``version_monitor``'s tables hold naive UTC (plain ``TIMESTAMP``). Everywhere,
a naive datetime means UTC: it is never read as local time.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["aware", "naive", "naive_or_none", "now"]


def now() -> datetime:
    """Now, aware UTC."""
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """``moment`` as aware UTC: a naive value is taken to be UTC, an aware one is converted."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def naive(moment: datetime) -> datetime:
    """``moment`` as naive UTC: an aware value is converted to UTC and loses its tzinfo; a
    naive one is taken to be UTC already and returned as it is."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def naive_or_none(moment: datetime | None) -> datetime | None:
    """:func:`naive`, with None passing through."""
    return None if moment is None else naive(moment)
