"""Benchmark: requests needed to publish release notes to Notion, against the local fake.

Publishes notes of 100, 1,000 and 5,000 top-level blocks (paragraphs, list items with one
nested item, code blocks, to-dos: no deep nesting) to :class:`tests.fakes.notion_fake.NotionFake`
through the real notion-client, three times each: create, update after a change, and an
unchanged re-publish (skipped); the page's ledger is kept between them, as the service keeps
it in its ``notion_page`` table. Prints the request counts next to the target: ``ceil(N/100)
+ 5`` for a create, the changed top-level blocks + 5 for an update (a change is written in
place, one request per changed block) and the time those requests take at the client-side rate limit
(2.5 requests/s; measured on a fake clock, nothing sleeps), and writes the table to the
``## Notion publishing`` section of ``docs/benchmarks.md``.

    .venv/bin/python benchmarks/notion_bench.py [--sizes 100 1000 5000] [--no-write]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import DOC, write_section  # noqa: E402
from release_notes.notion import (  # noqa: E402
    MemoryLedger,
    NotionPublisher,
    PageContent,
    TokenBucket,
    block_fingerprint,
)
from release_notes.notion_blocks import count_blocks, markdown_to_blocks  # noqa: E402
from tests.fakes.notion_fake import NotionFake  # noqa: E402
from tests.fakes.notion_fixtures import FakeClock, fake_config  # noqa: E402

SECTION = "## Notion publishing"
COMMAND = ".venv/bin/python benchmarks/notion_bench.py"


def note(top_level: int, revision: int = 0) -> str:
    """Markdown with exactly ``top_level`` top-level blocks, none nested deeper than 1."""
    parts: list[str] = []
    for i in range(top_level):
        kind = i % 4
        if kind == 0:
            parts.append(f"Change {i} (rev {revision}): the **register** keeps the tab 🍣.")
        elif kind == 1:
            parts.append(f"- feat(pos): item {i} [PR](https://git.test/pr/{i})\n  - detail {i}")
        elif kind == 2:
            parts.append(f"```python\nprint({i})\n```")
        else:
            parts.append(f"- [x] checked {i}")
        parts.append("")
    return "\n".join(parts)


def run(sizes: list[int]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for n in sizes:
        with NotionFake() as fake:
            clock = FakeClock()
            limiter = TokenBucket(clock=clock, sleep=clock.sleep)
            with NotionPublisher(fake_config(fake), limiter=limiter) as publisher:
                publisher.init_schema()
            ledger = MemoryLedger()
            previous: list[str] = []
            for step, revision in (("create", 0), ("update", 1), ("unchanged", 1)):
                markdown = note(n, revision)
                blocks = markdown_to_blocks(markdown)
                assert len(blocks) == n, (len(blocks), n)
                clock = FakeClock()
                limiter = TokenBucket(clock=clock, sleep=clock.sleep)
                fake.reset_requests()
                page = PageContent(
                    version="3.12.0",
                    markdown=markdown,
                    app="pos",
                    release_date=date(2024, 7, 1),
                    commits=n,
                )
                # A fresh publisher per step, as a background job would have.
                with NotionPublisher(fake_config(fake), limiter=limiter) as publisher:
                    started = time.perf_counter()
                    result = publisher.publish(page, blocks=blocks, ledger=ledger)
                    wall = time.perf_counter() - started
                fps = [block_fingerprint(b) for b in blocks]
                changed = sum(1 for a, b in zip(previous, fps, strict=False) if a != b)
                previous = fps
                rows.append(
                    {
                        "n": n,
                        "blocks": count_blocks(blocks),
                        "step": step,
                        "action": result.action,
                        "requests": result.requests,
                        "recorded": fake.count(),
                        "bound": math.ceil(n / 100) + 5 if step == "create" else changed + 5,
                        "limited_s": clock.now - 1000.0,
                        "wall_ms": wall * 1000,
                    }
                )
    return rows


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| top-level blocks | all blocks | publish | requests | target "
        "| at 2.5 req/s | wall time on loopback |",
        "|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['blocks']:,} | {r['step']} ({r['action']}) | {r['requests']} "
            f"| {r['bound']} | {float(str(r['limited_s'])):.1f} s "
            f"| {float(str(r['wall_ms'])):,.0f} ms |"
        )
    return "\n".join(lines)


def section(rows: list[dict[str, object]]) -> str:
    over = [r for r in rows if int(str(r["requests"])) > int(str(r["bound"]))]
    verdict = (
        "Every publish is within the target."
        if not over
        else f"{len(over)} publish(es) exceed the target."
    )
    return "\n".join(
        [
            SECTION,
            "",
            f"Measured with `{COMMAND}` on {date.today().isoformat()}: notes of N top-level "
            "blocks (paragraphs, list items with one nested item, code blocks, to-dos) "
            "published through the real notion-client to the local Notion fake "
            "(`tests/fakes/notion_fake.py`) by a fresh publisher each time (data source "
            "discovery and schema check included). Requests are counted by the fake; the "
            "time at 2.5 req/s is what the client-side token bucket (burst 3) imposes, "
            "measured on a fake clock. Python "
            f"{sys.version.split()[0]}.",
            "",
            table(rows),
            "",
            f"{verdict} Create = discover + schema + query + create (an empty page) + one "
            "append per 100 blocks + final properties (target ceil(N/100)+5); update = "
            "discover + schema + one in-place update per changed block (here every fourth "
            "top-level block, a paragraph, changes) + final properties (target: changed "
            "blocks + 5); unchanged = discover + schema + a read of the page. Notes nested "
            "deeper than two levels need one more request per deep parent (its children go "
            "to the id Notion returns). Requests per scenario, before and after the in-place "
            "updates: `## Notion publishing: requests per scenario`.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 5000])
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    rows = run(args.sizes)
    text = section(rows)
    print(text)
    if not args.no_write:
        write_section(SECTION, text)
        print(f"written to {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
