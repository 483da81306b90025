"""``relgov notion check | init-schema``, ``relgov notes publish``, ``relgov worker``."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any
from wsgiref.simple_server import WSGIServer

import click
from flask import current_app
from flask.cli import with_appcontext

from release_notes.cli import generate_command
from release_notes.notion import NotionError, SchemaReport
from service import db, jobs, metrics
from service.console import cli_actor, fail
from service.logs import log_format
from service.publishing import notion_publish
from service.releases.models import Release
from service.settings import Settings

_log = logging.getLogger(__name__)


def _app() -> Any:
    return current_app._get_current_object()  # type: ignore[attr-defined]


def _describe(report: SchemaReport) -> list[str]:
    lines = [f"data source: {report.data_source_id or '?'}"]
    if not report.accessible:
        return [*lines, f"no access: {report.error}"]
    lines.append("access: ok")
    if report.missing:
        lines.append("missing properties: " + ", ".join(report.missing))
    for name, (expected, actual) in report.wrong_type.items():
        lines.append(f"{name} is {actual}, expected {expected}")
    if report.missing_status_options:
        lines.append("Status lacks options: " + ", ".join(report.missing_status_options))
    if report.ok:
        lines.append("schema: ok (every property the service writes is there)")
    return lines


@click.group("notion")
def notion_group() -> None:
    """The Notion release-notes database."""


@notion_group.command("check")
@with_appcontext
def notion_check() -> None:
    """Report access and whether the data source has the properties the service writes."""
    report = _schema(init=False)
    if not report.ok:
        if report.accessible:
            click.echo("run `relgov notion init-schema` to add what is missing")
        raise SystemExit(1)


@notion_group.command("init-schema")
@with_appcontext
def notion_init_schema() -> None:
    """Add the properties the service writes to the data source (never converts types)."""
    _schema(init=True)


def _schema(*, init: bool) -> SchemaReport:
    if not notion_publish.settings_of().notion_configured:
        fail(notion_publish.NOT_CONFIGURED)
    try:
        report = notion_publish.check_schema(init=init)
    except NotionError as exc:
        fail(str(exc) if init else f"Notion could not be reached: {exc}")
    for line in _describe(report):
        click.echo(line)
    return report


@click.group("notes")
def notes_group() -> None:
    """Release notes: generate them from git, publish them to Notion."""


notes_group.add_command(generate_command, "generate")


@notes_group.command("publish")
@click.option("--release", "release_id", required=True, type=int, help="Release id.")
@click.option("--wait", is_flag=True, help="Run the job now in this process and print the result.")
@with_appcontext
def notes_publish(release_id: int, wait: bool) -> None:
    """Queue publishing a release's notes to Notion (or, with --wait, publish now)."""
    with db.session_scope() as session:
        release = session.get(Release, release_id)
        if release is None:
            fail(f"no release with id {release_id}")
            return
        try:
            job = notion_publish.request_publish(
                session, release, actor=cli_actor(), reason="requested from the command line"
            )
        except notion_publish.PublishRefused as exc:
            fail(str(exc))
        job_id, version = job.id, release.version
    if not wait:
        click.echo(f"queued job {job_id} to publish {version} notes; `relgov worker` runs it")
        return
    outcome = _run_job(job_id)
    if outcome is None:
        fail(f"job {job_id} is not due or another worker is running it")
    if outcome.state == "succeeded":
        click.echo(f"published {version}: {outcome.result}")
    elif outcome.state == "queued":
        click.echo(f"attempt {outcome.attempts} failed: {outcome.last_error}")
        click.echo(f"will retry at {outcome.next_run_at:%Y-%m-%d %H:%M:%S} UTC (`relgov worker`)")
        raise SystemExit(1)
    else:
        fail(f"publishing failed: {outcome.last_error}")


def _run_job(job_id: int | None) -> Any:
    """Run due jobs in this process until ``job_id`` has had its attempt."""
    app = _app()
    for _ in range(100):
        job = jobs.run_once(app)
        if job is None:
            return None
        if job.id == job_id:
            return job
    return None


def _serve_metrics(settings: Settings, plain: bool) -> WSGIServer | None:
    """The worker's own /metrics (RELGOV_WORKER_METRICS_PORT), or None when it is not set."""
    port, address = settings.worker_metrics_port, settings.worker_metrics_address
    if port is None:
        return None
    try:
        server = metrics.serve(jobs.worker_registry(), address, port)
    except OSError as exc:
        fail(f"cannot serve the worker's metrics on {address}:{port}: {exc.strerror or exc}")
    host = f"[{address}]" if ":" in address else address
    url = f"http://{host}:{server.server_port}/metrics"
    _log.info("worker metrics on %s", url, extra={"metrics_url": url})
    if plain:
        click.echo(f"metrics on {url}")
    return server


@click.command("worker")
@click.option("--once", is_flag=True, help="Run the jobs that are due, then exit.")
@click.option("--poll", default=1.0, show_default=True, type=float, help="Seconds between polls.")
@with_appcontext
def worker_command(once: bool, poll: float) -> None:
    """Work the background job queue (Notion publishing, periodic tasks) until stopped."""
    app = _app()
    stop = threading.Event()

    # With JSON logs (production) the job lines are logged (see jobs.run_once) and stdout
    # stays quiet; in a terminal each job also gets a readable line.
    plain = log_format(app.config["RELGOV_SETTINGS"]) != "json"

    def _stop(signum: int, _frame: Any) -> None:
        _log.info("received signal %s; finishing the current job", signum)
        if plain:
            click.echo(f"received signal {signum}; finishing the current job")
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)

    def report(job: Any) -> None:
        detail = job.result if job.state == "succeeded" else job.last_error
        click.echo(f"job {job.id} {job.kind} → {job.state}: {detail or ''}")

    _log.info("worker %s started (lease %s)", jobs.default_worker_id(), jobs.lease_of(app))
    server = None if once else _serve_metrics(app.config["RELGOV_SETTINGS"], plain)
    if not once and plain:
        click.echo("worker started; Ctrl+C to stop")
    on_job = report if plain else None
    try:
        stats = jobs.run_worker(app, once=once, poll_seconds=poll, stop_event=stop, on_job=on_job)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    if once:
        click.echo(f"ran {stats.runs} job(s)")
