"""Prometheus counters of heartbeat ingestion (multiprocess-safe like every metric of the
service, see :mod:`service.metrics`). Label values are fixed sets, resolved once."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter

from version_monitor.ingest import REJECTION_CODES, Rejection

__all__ = ["ACCEPTED", "RATE_LIMITED", "REJECTED", "count_rejections"]

ACCEPTED = Counter(
    "relgov_heartbeats_accepted_total",
    "Heartbeats accepted (replays that changed nothing included)",
)
REJECTED = Counter(
    "relgov_heartbeats_rejected_total",
    "Heartbeat items rejected, by reason",
    ["reason"],
)
RATE_LIMITED = Counter(
    "relgov_heartbeat_requests_rate_limited_total",
    "Heartbeat requests refused with 429 (the token's heartbeats per minute were used up)",
)

_BY_REASON: dict[str, Any] = {code: REJECTED.labels(code) for code in REJECTION_CODES}


def count_rejections(rejected: list[Rejection]) -> None:
    if len(rejected) == 1:
        _BY_REASON[rejected[0].code].inc()
        return
    tally: dict[str, int] = {}
    for rejection in rejected:
        tally[rejection.code] = tally.get(rejection.code, 0) + 1
    for code, count in tally.items():
        _BY_REASON[code].inc(count)
