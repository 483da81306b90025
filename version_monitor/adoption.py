"""Adoption arithmetic on plain rows: series, time to X %, stall rules.

Pure module: no Session, no I/O. :mod:`version_monitor.reports` fetches the rows and calls
these; tests feed them tables directly.

"Adoption of release R" is the share of counted (not offline) devices running R *or newer*:
a store that skipped straight to R's hotfix has adopted R. Version order is the byte order
of the sort keys from :mod:`version_monitor.versions`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import NamedTuple

from version_monitor.versions import key_of

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
            "channels": {name: asdict(series) for name, series in self.channels.items()},
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
    counts: Iterable[DailyCount],
    *,
    days: Sequence[date],
    releases: Sequence[ReleaseInfo] = (),
) -> AdoptionSeries:
    """Stack ``counts`` into one series per channel ("beta", "stable" and "all")."""
    index = {day: i for i, day in enumerate(days)}
    keys: dict[str, str] = {}
    grid: dict[str, dict[str, list[int]]] = {c: {} for c in CHANNELS_WITH_ALL}
    for row in counts:
        i = index.get(row.day)
        if i is None or row.channel not in grid:
            continue
        keys.setdefault(row.version, row.version_key)
        for channel in (row.channel, "all"):
            line = grid[channel].setdefault(row.version, [0] * len(days))
            line[i] += row.devices
    versions = sorted(keys, key=lambda v: (keys[v], v))
    channels: dict[str, ChannelSeries] = {}
    for channel, lines in grid.items():
        totals = [sum(lines[v][i] for v in lines) for i in range(len(days))]
        series = ChannelSeries(totals=totals)
        for version in versions:
            line = lines.get(version, [0] * len(days))
            series.devices[version] = line
            series.shares[version] = [_share(n, t) for n, t in zip(line, totals, strict=True)]
        channels[channel] = series
    return AdoptionSeries(
        app=app,
        days=list(days),
        versions=versions,
        channels=channels,
        releases=sorted(releases, key=lambda r: r.key),
    )


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
    """Time to each threshold for each release, in beta stores and overall, from rollups."""
    per_day: dict[str, dict[date, dict[str, int]]] = {"beta": {}, "all": {}}
    for row in counts:
        channels = ("beta", "all") if row.channel == "beta" else ("all",)
        for channel in channels:
            by_key = per_day[channel].setdefault(row.day, defaultdict(int))
            by_key[row.version_key] += row.devices
    milestones: list[Milestone] = []
    for release in sorted(releases, key=lambda r: r.key):
        key = release.key
        for channel in ("beta", "all"):
            start_at = release.beta_at if channel == "beta" else release.rolled_out_at
            start_at = start_at or release.beta_at
            start = start_at.date() if start_at else None
            shares: list[tuple[date, float]] = []
            if start is not None:
                for day in sorted(d for d in per_day[channel] if d >= start):
                    share = share_at_least(per_day[channel][day], key)
                    if share is not None:
                        shares.append((day, share))
            for threshold in thresholds:
                reached = next((day for day, share in shares if share >= threshold - 1e-12), None)
                milestones.append(
                    Milestone(
                        version=release.version,
                        channel=channel,
                        threshold=threshold,
                        started_on=start,
                        reached_on=reached,
                        days=(reached - start).days if reached and start else None,
                    )
                )
    return milestones


def stopped_rising(shares: Sequence[float], *, min_gain: float, done_at: float) -> bool:
    """Whether a daily share series (oldest first) gained less than ``min_gain`` overall
    while still below ``done_at``; needs at least two points."""
    if len(shares) < 2 or any(math.isnan(s) for s in shares):
        return False
    return shares[-1] < done_at and shares[-1] - shares[0] < min_gain
