"""Markdown and JSON rendering, escaping of untrusted commit text, template override."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from release_notes.commits import Person, parse_commit
from release_notes.config import NotesConfig
from release_notes.errors import NotesError
from release_notes.notes import ReleaseNotes, build_release_notes
from release_notes.render import md_inline, render_json, render_markdown, to_json_dict


def notes_for(*messages: str, config: NotesConfig | None = None) -> ReleaseNotes:
    commits = []
    parent: tuple[str, ...] = ()
    for i, message in enumerate(messages):
        sha = f"{i + 1:x}".rjust(40, "a")
        commits.append(parse_commit(sha, parent, Person("Alice", "a@x"), "2024-07-01", message))
        parent = (sha,)
    return build_release_notes(
        commits[::-1], version="3.12.0", date="2024-07-01", config=config, known_authors=set()
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", "plain text"),
        ("<script>alert(1)</script>", "\\<script\\>alert(1)\\</script\\>"),
        ("a *bold* [link](x)", "a \\*bold\\* \\[link\\](x)"),
        ("keep `code <b>` spans", "keep `code <b>` spans"),
        ("unbalanced ` tick", "unbalanced \\` tick"),
        ("snake_case_name", "snake_case_name"),
        ("_emph_", "\\_emph\\_"),
        ("# not a heading", "\\# not a heading"),
        ("1. not a list", "1\\. not a list"),
        ("3.12.0 release", "3.12.0 release"),
        ("- dash", "\\- dash"),
        ("-1 degrees", "-1 degrees"),
        ("multi\nline  text", "multi line text"),
        ("AT&T", "AT\\&T"),
        (None, ""),
    ],
)
def test_md_inline(text: str | None, expected: str) -> None:
    assert md_inline(text) == expected


def test_markdown_cannot_inject_html() -> None:
    notes = notes_for(
        "feat(order): <img src=x onerror=alert(1)> tips\n\n<script>alert(2)</script>\n\n"
        "Release-Note: <b>bold</b> claim"
    )
    html = MarkdownIt("commonmark").render(render_markdown(notes))
    assert "<script>" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html


def test_markdown_layout() -> None:
    config = NotesConfig(
        areas={"order": "Ordering"}, pr_url="https://github.com/acme/pos/pull/{number}"
    )
    notes = notes_for(
        "fix(kds)!: drop printers\n\nBREAKING CHANGE: ESC/P printers are no longer driven.",
        "feat(order): tips (#12)\n\nCustomers add a tip.\n\n"
        "Release-Note: Tips on the order screen.",
        config=config,
    )
    md = render_markdown(notes)
    order = [
        "# Release 3.12.0",
        "**3.12.0** · 2024-07-01 · 2 commits · 1 PR · 1 contributor",
        "## Breaking changes",
        "ESC/P printers are no longer driven.",
        "## For stores",
        "### Ordering",
        "- Tips on the order screen. ([#12](https://github.com/acme/pos/pull/12), `",
        "## Features",
        "- tips ([#12](https://github.com/acme/pos/pull/12), `",
        "  Customers add a tip.",
        "## Fixes",
        "**Breaking:** drop printers",
        "## Contributors",
        "- Alice (first contribution)",
    ]
    positions = [md.index(part) for part in order]
    assert positions == sorted(positions)


def test_template_override(tmp_path: Path) -> None:
    template = tmp_path / "mine.md.j2"
    template.write_text(
        "{{ notes.version }}:{% for i in notes.items %} {{ i.commit.subject | md }}{% endfor %}\n"
    )
    assert render_markdown(notes_for("feat: a_b *c*"), template) == "3.12.0: a_b \\*c\\*"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read template"),
        ("{% for %}", "invalid template"),
        ("{{ notes.nope }}", "failed"),
    ],
)
def test_bad_template(tmp_path: Path, content: str | None, message: str) -> None:
    template = tmp_path / "bad.md.j2"
    if content is not None:
        template.write_text(content)
    with pytest.raises(NotesError, match=message):
        render_markdown(notes_for("feat: x"), template)


def test_json_lists_every_commit_once() -> None:
    notes = notes_for("feat: a (#1)", "chore: b [skip changelog]", "fix(kds): c\n\nFixes #9")
    data = to_json_dict(notes)
    assert data["counts"]["commits"] == 3
    shas = [c["sha"] for c in data["shown"]] + [c["sha"] for c in data["filtered"]]
    assert len(shas) == len(set(shas)) == 3
    fix = next(c for c in data["shown"] if c["type"] == "fix")
    assert (fix["kind"], fix["scope"], fix["area"], fix["issue_refs"]) == (
        "fix",
        "kds",
        "kds",
        ["#9"],
    )
    assert fix["authors"] == [{"name": "Alice", "email": "a@x"}]
    assert data["filtered"][0]["reason"] == "skip-changelog"
    assert json.loads(render_json(notes)) == data
