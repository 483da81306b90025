"""Notion requests for a week's minutes: the demo's closed weeks published, one re-published
unchanged, and one re-published after a one-line amendment.

Seeds ``relgov demo`` into a fresh SQLite database with Notion pointed at the local fake
(``tests/fakes/notion_fake.py``, driven by the real notion-client) and a meetings database
whose schema is set up beforehand (not counted). Closing the demo's meetings queued one
minutes job per week; each is run by the job queue as a worker would, and the fake counts the
requests of each. ``--cold`` (default) forgets the checked schema before every job, as a
worker that has not published for 10 minutes (2 discovery requests more); ``--warm`` keeps it.

Prints the counts and writes ``## Meeting minutes to Notion: requests`` of
``docs/benchmarks.md`` (``--no-write``: print only).

    .venv/bin/python benchmarks/minutes_notion_bench.py [--warm] [--no-write]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_section

SECTION = "## Meeting minutes to Notion: requests"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", action="store_true", help="keep the checked schema")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    import logging

    from sqlmodel import col, select

    from release_notes.notion import NotionPublisher, SchemaCache
    from service import db, jobs, migrate
    from service.app import create_app
    from service.demo import seed_demo
    from service.jobs.models import Job
    from service.meetings import minutes, services
    from service.meetings.models import Meeting
    from service.meetings.weeks import parse_week
    from service.models import User, utcnow
    from service.publishing import notion_publish
    from service.releases.models import Release
    from service.settings import Settings
    from tests.fakes.notion_fake import NotionFake
    from tests.fakes.notion_fixtures import fake_config, instant_limiter

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, NotionFake() as fake:
        folder = Path(tmp)
        db_id, _ = fake.add_database("Release meetings", {"Name": {"title": {}}})
        config = replace(fake_config(fake, database_id=db_id), schema=minutes.MINUTES_SCHEMA)
        with NotionPublisher(config, limiter=instant_limiter()) as publisher:
            assert publisher.init_schema().ok
        url = f"sqlite:///{folder / 'bench.db'}"
        engine = db.make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        app = create_app(
            Settings(
                env="test",
                instance_path=folder / "instance",
                database_url=url,
                secret_key="benchmark-secret-key-that-is-long-enough-0123",
                repo_cache=folder / "repos",
                notion_token=fake.token,
                notion_base_url=fake.base_url,
                notion_meetings_database_id=db_id,
                notion_rate=3.0,
            )
        )
        seed_demo(app)
        moment = [utcnow() + timedelta(seconds=5)]

        def run_one() -> tuple[Job, int]:
            if not args.warm:
                app.extensions[notion_publish.SCHEMA_CACHE] = SchemaCache()
            fake.reset_requests()
            job = jobs.run_once(app, now=moment[0])
            moment[0] += timedelta(seconds=5)
            assert job is not None and job.state == "succeeded", job and job.last_error
            return job, fake.count()

        firsts: list[int] = []
        with app.app_context():
            while True:
                with db.session_scope() as session:
                    queued = session.exec(
                        select(Job).where(Job.kind == minutes.KIND, Job.state == "queued")
                    ).first()
                if queued is None:
                    break
                job, count = run_one()
                assert job.result and job.result.startswith("created"), job.result
                firsts.append(count)
            weeks = len(firsts)
            with db.session_scope() as session:
                meeting = session.exec(
                    select(Meeting)
                    .where(Meeting.state == "closed")
                    .order_by(col(Meeting.week_start).desc())
                ).first()
                assert meeting is not None
                week = meeting.week
                record = services.meeting_record(session, meeting)
                blocks = len(minutes.minutes_content(record, app.config["RELGOV_SETTINGS"]).blocks)
                minutes.request_minutes(
                    session, meeting, actor="user:rm@example.com", reason="bench"
                )
            job, unchanged = run_one()
            assert job.result and job.result.startswith("skipped"), job.result

            with db.session_scope() as session:
                meeting = session.exec(select(Meeting).where(Meeting.week == week)).one()
                rm = session.exec(select(User).where(User.email == "rm@example.com")).one()
                view = services.week_view(session, parse_week(week))
                item = next(i for i in view.items if i.decision is not None)
                decision = item.decision
                assert decision is not None
                services.decide(
                    session,
                    meeting=meeting,
                    release=session.get(Release, item.release_id),
                    user=rm,
                    decision=decision.decision,
                    reason=decision.reason + " (confirmed after the meeting)",
                    conditions=decision.conditions,
                    amendment=True,
                )
            job, amended = run_one()
            assert job.result and job.result.startswith("updated"), job.result

    mode = "warm (schema checked earlier by the same worker)" if args.warm else "cold"
    command = "benchmarks/minutes_notion_bench.py" + (" --warm" if args.warm else "")
    first = f"{statistics.median(firsts):g} ({min(firsts)}–{max(firsts)})"
    text = "\n".join(
        [
            SECTION,
            "",
            f"Measured with `.venv/bin/python {command}` on 2026-12-06: `relgov demo` seeded "
            "into SQLite with `RELGOV_NOTION_MEETINGS_DATABASE_ID` set to a database of the "
            "local Notion fake (driven by the real notion-client; its schema set up "
            "beforehand, not counted); closing the demo's meetings queued one minutes job per "
            "week, each run by the job queue; requests counted by the fake, every attempt "
            f"included. Schema cache: {mode}.",
            "",
            "| publish | Notion requests |",
            "|---|---:|",
            f"| a week's minutes, first publish ({weeks} demo weeks; median, min–max) | {first} |",
            f"| the same week again, nothing changed ({week}, {blocks} top-level blocks) "
            f"| {unchanged} |",
            f"| after a one-line amendment of one decision ({week}) | {amended} |",
            "",
            "A first publish: discovery and schema (2 when cold), the query by week and publish "
            "key, the create, the blocks in one append (under 100 top-level blocks, each "
            "decision with its lines as children), the properties. Unchanged: the page read "
            "that confirms the stored hash. An amendment: the decision's block (its children "
            "changed: deleted, and inserted again after its sibling), the new “Amendments” "
            "heading and line, the properties.",
            "",
        ]
    )
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
