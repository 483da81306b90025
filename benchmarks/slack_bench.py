"""Benchmark: what a Slack message costs a decision, and how fast the worker sends them.

On a fresh SQLite file (migrated), ``--releases`` releases in review are approved one by
one, each in its own transaction through ``lifecycle.transition`` (what the approve request
runs, minus HTTP), three times:

- ``no listener``: the audit listeners off (the service before the outbox);
- ``not configured``: Slack not configured (the message row is recorded, no job);
- ``Slack hanging``: the bot token pointed at the local fake, which hangs 30 s on every
  call (the message row and its job are recorded; nothing calls Slack in the transaction).

Then the job worker sends the queued messages to the fake (answering at once) and the rate
is measured. Targets: the outbox adds under 5 ms to an approval at p95 whatever Slack does;
the worker sends at least 20 messages a second to a Slack that answers at once.

    .venv/bin/python benchmarks/slack_bench.py [--releases 200] [--no-write]

Writes the ``## Slack notifications`` section of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import percentile, write_section  # noqa: E402
from service import audit, db, jobs, migrate  # noqa: E402
from service.app import create_app  # noqa: E402
from service.releases import lifecycle  # noqa: E402
from service.releases.models import App, Release  # noqa: E402
from service.settings import Settings  # noqa: E402
from tests.fakes.slack_fake import Fault, SlackFake  # noqa: E402

SECTION = "## Slack notifications"
COMMAND = ".venv/bin/python benchmarks/slack_bench.py"
MANAGER = lifecycle.Actor(name="user:rm@example.com", user_id=None, role="release_manager")


def approvals(settings: Settings, count: int, prefix: str, *, listeners: bool) -> list[float]:
    app = create_app(settings)
    timings = []
    with app.app_context():
        migrate.upgrade(db.engine())
        with db.session_scope() as session:
            row = App(slug=prefix, name=f"{prefix.upper()} register")
            session.add(row)
            session.flush()
            ids = []
            for n in range(count):
                release = Release(
                    app_id=row.id or 0,
                    version=f"3.{n}.0",
                    state="in_review",
                    created_by="user:ci@example.com",
                )
                session.add(release)
                session.flush()
                ids.append(release.id)
        saved = audit._listeners
        if not listeners:
            audit.listen([])
        try:
            for release_id in ids:
                started = time.perf_counter()
                with db.session_scope() as session:
                    release = session.get(Release, release_id)
                    assert release is not None
                    lifecycle.transition(session, release, "approve", actor=MANAGER)
                timings.append((time.perf_counter() - started) * 1000)
        finally:
            audit.listen(saved)
    app.extensions["relgov.engine"].dispose()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=200)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, SlackFake() as fake:
        base = Settings(
            env="test",
            instance_path=Path(folder),
            database_url=f"sqlite:///{folder}/bench.db",
            secret_key="benchmark-secret-key-0123456789-abcdefghij",
        )
        rows: list[tuple[str, list[float]]] = []
        rows.append(("no listener", approvals(base, args.releases, "a", listeners=False)))
        rows.append(("not configured", approvals(base, args.releases, "b", listeners=True)))
        slack = replace(
            base,
            slack_bot_token=fake.token,
            slack_base_url=fake.base_url,
            slack_default_channel="#releases",
            slack_timeout_seconds=1.0,
        )
        fake.inject(Fault(delay=30, times=10**6))
        rows.append(("Slack hanging", approvals(slack, args.releases, "c", listeners=True)))
        calls_during = len(fake.requests)
        fake.faults.clear()
        app = create_app(slack)
        started = time.perf_counter()
        sent = 0
        while (job := jobs.run_once(app)) is not None:
            sent += job.state == "succeeded"
        elapsed = time.perf_counter() - started
        app.extensions["relgov.engine"].dispose()
    lines = [
        SECTION,
        "",
        f"`{COMMAND} --releases {args.releases}` (SQLite file; one transaction per approval, "
        "`lifecycle.transition` as the approve request runs it; the local Slack fake, "
        "`tests/fakes/slack_fake.py`).",
        "",
        "| approvals | p50 ms | p95 ms | max ms |",
        "|---|---|---|---|",
    ]
    for name, values in rows:
        lines.append(
            f"| {name} | {percentile(values, 50):.2f} | {percentile(values, 95):.2f} | "
            f"{max(values):.2f} |"
        )
    rate = sent / elapsed if elapsed else 0.0
    lines += [
        "",
        f"Calls to Slack while approving with Slack hanging: {calls_during}. "
        f"The worker then sent {sent} messages in {elapsed:.2f} s ({rate:.0f} a second, one "
        "job each: claim, breaker, one `chat.postMessage`, record).",
        "",
        "Targets: the outbox adds under 5 ms to an approval at p95 whatever Slack does "
        + ("(met)" if percentile(rows[2][1], 95) - percentile(rows[0][1], 95) < 5 else "(missed)")
        + "; the worker sends at least 20 messages a second "
        + ("(met)." if rate >= 20 else "(missed)."),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
