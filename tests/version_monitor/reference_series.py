"""The series builder as it was before the one-pass rewrite (a frozen copy), and the
``as_dict`` it gave (``dataclasses.asdict``): the reference the fast code is held to."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import date

from version_monitor.adoption import (
    CHANNELS_WITH_ALL,
    AdoptionSeries,
    ChannelSeries,
    DailyCount,
    ReleaseInfo,
)


def reference_dict(series: AdoptionSeries) -> dict[str, object]:
    return {
        "app": series.app,
        "days": [d.isoformat() for d in series.days],
        "versions": series.versions,
        "channels": {name: asdict(ch) for name, ch in series.channels.items()},
        "releases": [r.as_dict() for r in series.releases],
    }


def reference_series(
    app: str,
    counts: Iterable[DailyCount],
    *,
    days: Sequence[date],
    releases: Sequence[ReleaseInfo] = (),
) -> AdoptionSeries:
    """Stack ``counts`` into one series per channel ("beta", "stable" and "all").

    Per-day totals and shares are computed column-wise (``zip``), not per day and version.
    """
    index = {day: i for i, day in enumerate(days)}
    width = len(days)
    keys: dict[str, str] = {}
    grid: dict[str, dict[str, list[int]]] = {c: {} for c in CHANNELS_WITH_ALL}
    for day, version, key, channel, devices in counts:
        i = index.get(day)
        if i is None or channel not in grid:
            continue
        keys.setdefault(version, key)
        for name in (channel, "all"):
            lines = grid[name]
            line = lines.get(version)
            if line is None:
                line = lines[version] = [0] * width
            line[i] += devices
    versions = sorted(keys, key=lambda v: (keys[v], v))
    channels: dict[str, ChannelSeries] = {}
    for name, lines in grid.items():
        totals = [sum(column) for column in zip(*lines.values(), strict=True)]
        if not lines:
            totals = [0] * width
        series = ChannelSeries(totals=totals)
        for version in versions:
            line = lines.get(version) or [0] * width
            series.devices[version] = line
            series.shares[version] = [
                n / t if t else 0.0 for n, t in zip(line, totals, strict=True)
            ]
        channels[name] = series
    return AdoptionSeries(
        app=app,
        days=list(days),
        versions=versions,
        channels=channels,
        releases=sorted(releases, key=lambda r: r.key),
    )
