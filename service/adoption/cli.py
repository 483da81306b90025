"""``relgov adoption rollup | prune``: thin wrappers around ``service.adoption.periodic``."""

from __future__ import annotations

from datetime import datetime

import click
from flask.cli import with_appcontext

from service.adoption.periodic import prune, retention_days, rollup
from service.console import cli_actor, fail


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
    keep = keep_days or retention_days()
    deleted = prune(keep_days=keep, actor=cli_actor())
    click.echo(f"pruned {deleted} rollup rows older than {keep} days")
