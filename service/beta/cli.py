"""``relgov stores import FILE [--accept-valid]``: a thin wrapper around the CSV import."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from beta.csv_import import ImportHasErrors, ImportReport
from beta.errors import BetaError
from service import db
from service.beta import services
from service.console import cli_actor, fail


def report_lines(report: ImportReport) -> list[str]:
    """The line-by-line report, as the CLI prints it."""
    lines = [f"file error: {error}" for error in report.file_errors]
    lines += [
        f"line {r.line_no}: rejected{f' ({r.external_id})' if r.external_id else ''}: {r.reason}"
        for r in report.rejected
    ]
    if not report.file_errors:
        lines.append(
            f"{len(report.valid_rows)} valid line(s): {len(report.would_create)} to create, "
            f"{len(report.would_update)} to update, {len(report.unchanged)} unchanged; "
            f"{len(report.rejected)} rejected"
        )
    return lines


@click.group("stores")
def stores_group() -> None:
    """Stores of the fleet."""


@stores_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--accept-valid", is_flag=True, help="Apply the valid lines even when others are rejected."
)
@with_appcontext
def import_command(file: Path, accept_valid: bool) -> None:
    """Upsert stores from a CSV file by external id; nothing changes on any error unless
    --accept-valid is given."""
    try:
        data = file.read_bytes()
    except OSError as error:
        fail(f"cannot read {file}: {error.strerror or error}")
        return
    try:
        with db.session_scope() as session:
            report, result = services.import_csv(
                session, data, actor=cli_actor(), accept_valid=accept_valid
            )
    except ImportHasErrors as error:
        if error.report.file_errors:
            fail("; ".join(error.report.file_errors))
            return
        for line in report_lines(error.report):
            click.echo(line)
        fail(f"nothing imported: {error.message} (use --accept-valid)")
        return
    except BetaError as error:
        fail(error.message)
        return
    for line in report_lines(report):
        click.echo(line)
    click.echo(
        f"imported: {len(result.created)} created, {len(result.updated)} updated, "
        f"{len(result.unchanged)} unchanged, {len(result.skipped_lines)} line(s) skipped"
    )
