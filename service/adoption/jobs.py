"""Rollups and pruning (CLI and the worker's periodic pass) and the stall gauge."""

from __future__ import annotations

from datetime import date, timedelta

import click
from flask import Flask, current_app, has_app_context
from flask.cli import with_appcontext
from prometheus_client import Gauge

from service import audit, db
from service.adoption import services
from service.cli import cli_actor, fail
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


def periodic_rollup(app: Flask) -> None:
    """One pass of the worker: roll up today and yesterday, then prune past the retention."""
    with app.app_context():
        rollup(days=2)
        prune(keep_days=services.retention_days(), actor="system:worker")


@click.group("adoption")
def adoption_group() -> None:
    """Version adoption: daily rollups and their retention."""


@adoption_group.command("rollup")
@click.option(
    "--days",
    type=click.IntRange(1, 3660),
    default=None,
    help="Today and the days before it (default 2).",
)
@click.option(
    "--from",
    "start",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="First day (YYYY-MM-DD).",
)
@click.option(
    "--to", "end", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Last day (YYYY-MM-DD)."
)
@with_appcontext
def rollup_command(days: int | None, start: object, end: object) -> None:
    """Recompute daily rollups (idempotent: running it twice gives the same rows)."""
    from datetime import datetime

    if (start is None) != (end is None):
        fail("give both --from and --to, or neither")
    if start is not None and days is not None:
        fail("give either --days or --from/--to, not both")
    if isinstance(start, datetime) and isinstance(end, datetime):
        if start > end:
            fail("--from must not be after --to")
        if (end - start).days > 3660:
            fail("--from/--to spans more than ten years")
        rows = rollup(start=start.date(), end=end.date())
        click.echo(f"rolled up {start.date()} to {end.date()}: {rows} rows")
        return
    rows = rollup(days=days or 2)
    click.echo(f"rolled up the last {days or 2} day(s): {rows} rows")


@adoption_group.command("prune")
@click.option(
    "--keep-days",
    type=click.IntRange(min=1),
    default=None,
    help="Days of rollups to keep (default: RELGOV_ROLLUP_RETENTION_DAYS, else 400).",
)
@with_appcontext
def prune_command(keep_days: int | None) -> None:
    """Delete daily rollups older than the retention."""
    try:
        keep = keep_days or services.retention_days()
    except ValueError as exc:
        fail(str(exc))
        return
    deleted = prune(keep_days=keep, actor=cli_actor())
    click.echo(f"pruned {deleted} rollup rows older than {keep} days")


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
