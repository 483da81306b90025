"""The adoption feature's upkeep: daily rollups and their retention (the worker runs them
every ten minutes; ``relgov adoption`` by hand), and the stall gauge in ``/metrics``."""

from __future__ import annotations

from datetime import date, timedelta

from flask import Flask, current_app, has_app_context
from prometheus_client import Gauge

from service import audit, db
from service.adoption import services
from service.jobs import JobContext
from version_monitor.rollup import prune_rollups, rollup_range, rollup_recent

STALLED = Gauge(
    "relgov_release_adoption_stalled",
    "1 while a release's adoption is flagged as stalled (kind: beta_below_target | not_rising)",
    ["app", "version", "kind"],
    # The latest scrape wins across workers: a release no longer stalled reads 0 at once.
    multiprocess_mode="mostrecent",
)
_flagged: set[tuple[str, str, str]] = set()


def rollup(*, start: date | None = None, end: date | None = None, days: int = 2) -> int:
    """Recompute the daily rollups of ``start``…``end`` (or the last ``days`` days)."""
    now = services.now_naive()
    with db.session_scope() as session:
        if start is None or end is None:
            return rollup_recent(session, now=now, days=days)
        return rollup_range(session, start=start, end=end, now=now)


def prune(*, keep_days: int, actor: str) -> int:
    """Delete rollups older than ``keep_days`` days; records an audit event when any go."""
    now = services.now_naive()
    with db.session_scope() as session:
        deleted = prune_rollups(session, keep_days=keep_days, now=now)
        if deleted:
            cutoff = now.date() - timedelta(days=keep_days)
            audit.record(
                session,
                actor=actor,
                action="adoption.rollups_pruned",
                subject_type="adoption_daily",
                subject_id=f"before {cutoff.isoformat()}",
                after={"deleted_rows": deleted, "keep_days": keep_days},
                summary=f"pruned {deleted} daily rollup rows older than {cutoff.isoformat()}",
            )
        return deleted


EVERY_SECONDS = 600


def upkeep(app: Flask) -> None:
    """One pass: roll up today and yesterday, then prune past the retention."""
    with app.app_context():
        rollup(days=2)
        prune(keep_days=retention_days(), actor="system:worker")


def periodic_rollup(ctx: JobContext) -> str:
    """The worker's periodic job (every :data:`EVERY_SECONDS`): :func:`upkeep`."""
    upkeep(ctx.app)
    return "rolled up today and yesterday"


def retention_days() -> int:
    """``RELGOV_ROLLUP_RETENTION_DAYS``: how many days of rollups to keep."""
    days: int = current_app.config["RELGOV_SETTINGS"].rollup_retention_days
    return days


def collect_stall_gauge() -> None:
    """``/metrics``: one ``relgov_release_adoption_stalled`` sample per stalled release."""
    if not has_app_context():
        return
    try:
        with db.session_scope() as session:
            stalls = services.stall_summary(session)
    except Exception:  # a scrape must not fail because one report could not be computed
        current_app.logger.exception("adoption stall gauge")
        return
    now = {(s["app"], s["version"], s["kind"]) for s in stalls}
    for labels in _flagged - now:
        STALLED.labels(*labels).set(0)
    for labels in now:
        STALLED.labels(*labels).set(1)
    _flagged.clear()
    _flagged.update(now)
