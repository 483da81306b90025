"""Showing a moment: in one time zone, with its abbreviation, and the UTC time on hover.

Pages show times through the ``when`` template filter:
``{{ release.created_at | when(app.train_timezone) }}`` renders
``<time datetime="2026-10-14T05:00:00+00:00" title="2026-10-14 05:00:00 UTC">``
``2026-10-14 14:00 JST</time>``.
A page about one app passes the app's train time zone; anything else (``| when``) uses the
service's display zone, which ``service/wiring.py`` names (the meeting's time zone).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, current_app, g
from markupsafe import Markup, escape

import utc

FORMATS = {
    "datetime": "%Y-%m-%d %H:%M",
    "short": "%m-%d %H:%M",
    "day": "%a %Y-%m-%d %H:%M",
    "date": "%Y-%m-%d",
    "time": "%H:%M",
    "seconds": "%Y-%m-%d %H:%M:%S",
}
_DEFAULT_KEY = "relgov.display_zone"


def zone(name: str | None) -> ZoneInfo:
    """The zone ``name``, or UTC when it is empty or unknown (a page must not fail on it)."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local(moment: datetime, zone_name: str | None) -> datetime:
    return utc.aware(moment).astimezone(zone(zone_name))


def text(moment: datetime | None, zone_name: str | None, fmt: str = "datetime") -> str:
    """``2026-10-14 14:00 JST``: the moment in the zone, with its abbreviation."""
    if moment is None:
        return "—"
    shown = local(moment, zone_name)
    return f"{shown.strftime(FORMATS.get(fmt, fmt))} {shown.tzname()}"


def html(moment: datetime | None, zone_name: str | None, fmt: str = "datetime") -> Markup:
    """:func:`text` in a ``<time>`` element whose title is the UTC time."""
    if moment is None:
        return Markup("—")
    aware = utc.aware(moment)
    return Markup('<time datetime="{}" title="{} UTC">{}</time>').format(
        aware.isoformat(), aware.strftime(FORMATS["seconds"]), text(aware, zone_name, fmt)
    )


def display_zone() -> str:
    """The zone of times on pages that are not about one app (cached for the request)."""
    name: str | None = g.get(_DEFAULT_KEY)
    if name is None:
        resolve: Callable[[], str] = current_app.extensions[_DEFAULT_KEY]
        name = g.setdefault(_DEFAULT_KEY, resolve())
    return name


def _when(
    moment: datetime | str | None, zone_name: str | None = None, fmt: str = "datetime"
) -> Markup:
    if isinstance(moment, str):  # a moment kept in JSON (a snapshot)
        moment = datetime.fromisoformat(moment) if moment else None
    return html(moment, zone_name or display_zone(), fmt)


def _zone_label(zone_name: str | None = None) -> Markup:
    name = zone_name or display_zone()
    abbreviation = utc.now().astimezone(zone(name)).tzname()
    return Markup("{} ({})").format(escape(abbreviation), escape(name))


def init_app(app: Flask, *, default_zone: Callable[[], str]) -> None:
    """The ``when`` filter and ``zone_label`` function for templates; ``default_zone`` names
    the zone of times that belong to no app."""
    app.extensions[_DEFAULT_KEY] = default_zone
    app.add_template_filter(_when, "when")
    app.add_template_global(_zone_label, "zone_label")
