"""benchmarks/soak.py for a few seconds on the test database, so the script cannot rot.

Seeds a small fleet, starts gunicorn (2 workers) and the job worker on loopback, runs the
four load streams (the job worker publishing notes to the Notion fake) and checks the
database against what the simulator recorded. Nothing here is timed: only that every stream
got answers, nothing failed, no accepted heartbeat or edit is missing and the report and
the docs section come out whole.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak", BENCHMARKS / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module
    spec.loader.exec_module(module)
    return module


def test_soak_runs_and_loses_nothing(
    soak: ModuleType, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = soak.Options(
        devices=60,
        duration=5.0,
        warmup=1.0,
        interval=1.0,
        answer_rate=5.0,
        users=1,
        think=(0.1, 0.3),
        heartbeat_processes=2,
        sample_every=0.5,
        publish_every=1.5,
    )
    outcome = soak.run(database_url, options, folder=tmp_path / "soak")

    heartbeats, answers, ui, notes = outcome.streams
    assert [s.name for s in outcome.streams][:3] == ["heartbeats", "update answers", "UI reads"]
    for stream in outcome.streams:
        assert stream.statuses == {}, stream
        assert stream.total_requests > 0, stream.name
    assert heartbeats.items > 0 and answers.requests > 0 and ui.requests > 0
    assert notes.items > 0  # notes edited and published
    check = outcome.verification
    assert check.lost == 0, check.examples
    assert check.unexpected_changes == 0
    assert check.devices == 60  # every device sent, the new ones included
    assert check.expected_changes > 0  # first sightings of new devices, upgrades
    assert set(outcome.memory) == {
        "gunicorn master",
        "web worker 1",
        "web worker 2",
        "job worker",
    }
    assert outcome.replaced_workers == 0
    assert any(key.startswith("periodic:adoption-rollup") for key in outcome.jobs)
    published = outcome.publishing
    assert published.releases > 0 and published.drained
    assert published.lost == 0, published.examples

    text = soak.report(outcome)
    assert text.startswith("## Soak\n")
    assert "**lost: 0**" in text and "| web worker 2 |" in text

    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Update answer\n\nkept\n\n## Soak\n\nold\n\n## Later\n\nx\n")
    monkeypatch.setattr(soak, "DOC", doc)
    soak.write_section(text)
    written = doc.read_text()
    assert "## Update answer\n\nkept\n" in written and "## Later\n\nx\n" in written
    assert "old" not in written and written.count("## Soak") == 1
