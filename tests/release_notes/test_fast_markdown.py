"""The direct Markdown writer gives exactly what the packaged Jinja template gives."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from release_notes import render
from release_notes.commits import Person, parse_commit
from release_notes.config import NotesConfig
from release_notes.notes import ReleaseNotes, build_release_notes
from release_notes.render import (
    DEFAULT_TEMPLATE,
    iter_default_markdown,
    iter_jinja_markdown,
    md_inline,
    render_markdown,
)
from tests.release_notes.test_parser_equivalence import _bench_messages, _corpus

PEOPLE = [Person("Alice", "a@x"), Person("", "b@x"), Person("C_*d", "c@x"), Person("bot[bot]", "d")]


def _notes(
    messages: list[str], config: NotesConfig, seed: int, shipped_every: int = 0
) -> ReleaseNotes:
    rng = random.Random(seed)
    commits = []
    parents: tuple[str, ...] = ()
    for i, message in enumerate(messages):
        sha = f"{i + 1:x}".rjust(40, "0")
        author = rng.choice(PEOPLE)
        commits.append(parse_commit(sha, parents, author, "2024-07-01T10:00:00+02:00", message))
        parents = (sha,)
    shipped = (
        {
            c.sha: ("d101041" + c.sha[7:], rng.choice(["cherry-pick", "same patch"]))
            for c in commits[::shipped_every]
        }
        if shipped_every
        else None
    )
    return build_release_notes(
        commits[::-1],
        version=rng.choice(["3.12.0", "v1_*x", "1. odd"]),
        date="2024-07-01",
        config=config,
        known_authors={"a@x"},
        shipped=shipped,
        shipped_in=rng.choice(["v1.0.1", "v1_*x", None]) if shipped_every else None,
    )


CONFIGS = [
    NotesConfig(),
    NotesConfig(
        areas={"order": "Ordering", "kds": "Kitchen *display*"},
        pr_url="https://github.com/o/r/pull/{number}",
        commit_url="https://github.com/o/r/commit/{sha}",
        bot_policy="filter",
    ),
    NotesConfig(pr_url="https://x/{number}"),
]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("size", [0, 1, 3, 200, 3000])
def test_fast_writer_matches_the_template(config: NotesConfig, size: int) -> None:
    messages = (_corpus(size) + _bench_messages(size))[: size * 2] or ["chore: x"]
    notes = _notes(messages, config, size, shipped_every=7 if size % 2 else 0)
    notes.from_ref, notes.to_ref = ("v1.0.0", "v1.1.0") if size % 2 else (None, "HEAD")
    if size == 0:
        notes.contributors = []
    fast = "".join(iter_default_markdown(notes, chunk_items=7))
    assert fast == "".join(iter_jinja_markdown(notes))
    assert render_markdown(notes) == fast


def test_edited_default_template_falls_back_to_jinja(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    notes = _notes(["feat: one"], NotesConfig(), 1)
    copy = tmp_path / "release_notes.md.j2"
    copy.write_text(DEFAULT_TEMPLATE.read_text() + "extra\n")
    monkeypatch.setattr(render, "DEFAULT_TEMPLATE", copy)
    monkeypatch.setattr(render, "_FAST_OK", None)
    assert render_markdown(notes).endswith("extra\n")
    assert render_markdown(notes, copy).endswith("extra\n")


def test_md_inline_fast_check_agrees_with_the_full_escape() -> None:
    rng = random.Random(3)
    alphabet = "ab1 #>-+_*`[]<>&|~\\\n\r\t.)٣"
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
        assert md_inline(text) == render._md_inline_full(text), repr(text)
