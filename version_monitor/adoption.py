"""Adoption arithmetic on plain rows: series, time to X %, stall rules.

Pure module: no Session, no I/O. :mod:`version_monitor.reports` fetches the rows and calls
these; tests feed them tables directly.

"Adoption of release R" is the share of counted (not offline) devices running R *or newer*:
a store that skipped straight to R's hotfix has adopted R. Version order is the byte order
of the sort keys from :mod:`versioning.storage_key`.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from operator import truediv
from typing import NamedTuple

from versioning.storage_key import key_of

__all__ = [
    "CHANNELS_WITH_ALL",
    "THRESHOLDS",
    "AdoptionSeries",
    "ChannelSeries",
    "DailyCount",
    "Milestone",
    "ReleaseInfo",
    "build_series",
    "share_at_least",
    "stopped_rising",
    "time_to_thresholds",
]

THRESHOLDS = (0.5, 0.8, 0.95)
CHANNELS_WITH_ALL = ("beta", "stable", "all")


@dataclass(frozen=True)
class ReleaseInfo:
    """A release as the service knows it: when it entered beta and went to every store."""

    version: str
    beta_at: datetime | None = None
    rolled_out_at: datetime | None = None

    @property
    def key(self) -> str:
        return key_of(self.version)

    def as_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "beta_at": self.beta_at.isoformat() if self.beta_at else None,
            "rolled_out_at": self.rolled_out_at.isoformat() if self.rolled_out_at else None,
        }


class DailyCount(NamedTuple):
    """Devices on one version in one channel on one day (summed over device kinds)."""

    day: date
    version: str
    version_key: str
    channel: str
    devices: int


@dataclass
class ChannelSeries:
    """Per version, devices and share of the channel's counted devices for each day."""

    totals: list[int]
    devices: dict[str, list[int]] = field(default_factory=dict)
    shares: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class AdoptionSeries:
    """Stacked adoption of every version over days, per channel, with releases marked."""

    app: str
    days: list[date]
    versions: list[str]  # oldest first, the stacking order
    channels: dict[str, ChannelSeries]
    releases: list[ReleaseInfo]

    def as_dict(self) -> dict[str, object]:
        return {
            "app": self.app,
            "days": [d.isoformat() for d in self.days],
            "versions": self.versions,
            # Copied list by list: ``dataclasses.asdict`` copies a year of daily numbers
            # one function call at a time.
            "channels": {
                name: {
                    "totals": list(series.totals),
                    "devices": {v: list(line) for v, line in series.devices.items()},
                    "shares": {v: list(line) for v, line in series.shares.items()},
                }
                for name, series in self.channels.items()
            },
            "releases": [r.as_dict() for r in self.releases],
        }

    def rows(self) -> list[dict[str, object]]:
        """One row per day, channel and version, for CSV."""
        out: list[dict[str, object]] = []
        for name, series in self.channels.items():
            for version in self.versions:
                for i, day in enumerate(self.days):
                    out.append(
                        {
                            "day": day.isoformat(),
                            "channel": name,
                            "version": version,
                            "devices": series.devices[version][i],
                            "share": series.shares[version][i],
                        }
                    )
        return out


def _share(part: int, total: int) -> float:
    return part / total if total else 0.0


def build_series(
    app: str,
    counts: Iterable[tuple[date | str, str, str, str, int]],
    *,
    days: Sequence[date],
    releases: Sequence[ReleaseInfo] = (),
) -> AdoptionSeries:
    """Stack ``counts`` into one series per channel ("beta", "stable" and "all").

    ``counts`` are :class:`DailyCount` rows or plain tuples in the same order, the day a
    ``date`` or its ISO text (as SQLite gives it); rows of other days or channels are left
    out. One pass: each row adds its devices to its version's line in its channel and in
    "all", so an iterator over a database cursor is folded as it is read and no row is
    kept (a year is ~18,000 rows; kept, they set off full garbage collections).
    """
    width = len(days)
    index: dict[date | str, int] = {}
    for n, point in enumerate(days):
        index[point] = index[point.isoformat()] = n
    keys: dict[str, str] = {}  # version -> its sort key, for the stacking order
    grid: dict[str, dict[str, list[int]]] = {c: {} for c in CHANNELS_WITH_ALL}
    everyone = grid["all"]
    for day, version, key, channel, devices in counts:
        i = index.get(day)
        lines = grid.get(channel)
        if i is None or lines is None:
            continue
        if version not in keys:
            keys[version] = key
        line = lines.get(version)
        if line is None:
            line = lines[version] = [0] * width
        line[i] += devices
        line = everyone.get(version)
        if line is None:
            line = everyone[version] = [0] * width
        line[i] += devices
    versions = sorted(keys, key=lambda v: (keys[v], v))
    return AdoptionSeries(
        app=app,
        days=list(days),
        versions=versions,
        channels={name: _stack(lines, versions, width) for name, lines in grid.items()},
        releases=sorted(releases, key=lambda r: r.key),
    )


def _stack(lines: dict[str, list[int]], versions: list[str], width: int) -> ChannelSeries:
    """One channel's devices per version and day, and their shares of the day's total,
    column-wise in C (``zip``, ``map``)."""
    totals = [sum(column) for column in zip(*lines.values(), strict=True)] if lines else [0] * width
    # A day without devices in the channel has only zeros: 0 / 1 gives its 0.0 share.
    divisors = [total or 1 for total in totals]
    series = ChannelSeries(totals=totals)
    for version in versions:
        line = lines.get(version)
        if line is None:
            series.devices[version] = [0] * width
            series.shares[version] = [0.0] * width
        else:
            series.devices[version] = line
            series.shares[version] = list(map(truediv, line, divisors))
    return series


def share_at_least(by_key: Mapping[str, int], key: str) -> float | None:
    """The share of devices on ``key`` or newer; ``None`` when there are no devices."""
    total = sum(by_key.values())
    if not total:
        return None
    return sum(n for k, n in by_key.items() if k >= key) / total


@dataclass(frozen=True)
class Milestone:
    """When a release reached ``threshold`` adoption in a channel ("beta" or "all").

    ``days`` counts whole days from the start (beta: entering beta; all: going to every
    store, or entering beta when it never did) to the first day whose rollup reached the
    threshold; ``None`` while it has not.
    """

    version: str
    channel: str
    threshold: float
    started_on: date | None
    reached_on: date | None
    days: int | None

    def as_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "channel": self.channel,
            "threshold": self.threshold,
            "started_on": self.started_on.isoformat() if self.started_on else None,
            "reached_on": self.reached_on.isoformat() if self.reached_on else None,
            "days": self.days,
        }


def time_to_thresholds(
    counts: Iterable[DailyCount],
    releases: Sequence[ReleaseInfo],
    *,
    thresholds: Sequence[float] = THRESHOLDS,
) -> list[Milestone]:
    """Time to each threshold for each release, in beta stores and overall, from rollups.

    Per channel and day the version keys are sorted with suffix sums, so "share on this
    key or newer" is one bisection instead of a sum over every version; the days of a
    release are scanned only until its highest threshold is reached.
    """
    per_day: dict[str, dict[date, dict[str, int]]] = {"beta": {}, "all": {}}
    for row in counts:
        for channel in ("beta", "all") if row.channel == "beta" else ("all",):
            by_key = per_day[channel].setdefault(row.day, {})
            by_key[row.version_key] = by_key.get(row.version_key, 0) + row.devices
    tables: dict[str, tuple[list[date], list[tuple[date, list[str], list[int], int]]]] = {}
    for channel, days in per_day.items():
        entries = []
        for day in sorted(days):
            by_key = days[day]
            keys = sorted(by_key)
            suffix = [0] * (len(keys) + 1)
            for i in range(len(keys) - 1, -1, -1):
                suffix[i] = suffix[i + 1] + by_key[keys[i]]
            if suffix[0]:
                entries.append((day, keys, suffix, suffix[0]))
        tables[channel] = ([entry[0] for entry in entries], entries)
    milestones: list[Milestone] = []
    for release in sorted(releases, key=lambda r: r.key):
        key = release.key
        for channel in ("beta", "all"):
            start_at = release.beta_at if channel == "beta" else release.rolled_out_at
            start_at = start_at or release.beta_at
            start = start_at.date() if start_at else None
            reached: dict[float, date] = {}
            if start is not None:
                day_list, entries = tables[channel]
                pending = sorted(set(thresholds))
                for day, keys, suffix, total in entries[bisect_left(day_list, start) :]:
                    share = suffix[bisect_left(keys, key)] / total
                    while pending and share >= pending[0] - 1e-12:
                        reached[pending.pop(0)] = day
                    if not pending:
                        break
            for threshold in thresholds:
                on = reached.get(threshold)
                milestones.append(
                    Milestone(
                        version=release.version,
                        channel=channel,
                        threshold=threshold,
                        started_on=start,
                        reached_on=on,
                        days=(on - start).days if on and start else None,
                    )
                )
    return milestones


def stopped_rising(shares: Sequence[float], *, min_gain: float, done_at: float) -> bool:
    """Whether a daily share series (oldest first) gained less than ``min_gain`` overall
    while still below ``done_at``; needs at least two points."""
    if len(shares) < 2 or any(math.isnan(s) for s in shares):
        return False
    return shares[-1] < done_at and shares[-1] - shares[0] < min_gain
