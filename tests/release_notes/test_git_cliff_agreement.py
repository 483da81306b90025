"""Our conventional parser agrees with git-cliff's on kind, scope and breaking flag.

Runs ``git-cliff --context`` on the same repository; skipped when the binary is absent.
Deliberate differences (not in AGREE, checked in DIFFER): we accept whitespace between
type and scope or before the colon (``feat (order): x``, ``feat(order) : x``) and an
empty scope (``feat(): x``) as conventional; git-cliff treats them as unconventional.
Our subject also drops a squash suffix ``(#12)`` (it becomes the PR number).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from release_notes.generate import generate_for_range
from tests.release_notes.git_repo_builder import GitRepo

GIT_CLIFF = shutil.which("git-cliff", path=str(Path(sys.executable).parent)) or shutil.which(
    "git-cliff"
)
pytestmark = pytest.mark.skipif(GIT_CLIFF is None, reason="git-cliff is not installed")

TYPES = [
    "feat",
    "fix",
    "perf",
    "refactor",
    "docs",
    "test",
    "build",
    "ci",
    "chore",
    "style",
    "revert",
]
CLIFF_CONFIG = "\n".join(
    [
        "[changelog]",
        'body = ""',
        "[git]",
        "conventional_commits = true",
        "filter_unconventional = false",
        "filter_commits = false",
        "commit_parsers = [",
        *[f'  {{ message = "(?i)^\\\\s*{t}\\\\b", group = "{t}" }},' for t in TYPES],
        '  { message = ".*", group = "other" },',
        "]",
    ]
)

AGREE = [
    "feat(order): add tips",
    "fix: crash on empty cart",
    "feat(order)!: drop cash tips",
    "fix!: new receipt layout",
    "Feat(Order): capitalised",
    "FIX: shouting",
    "fix:no space",
    "perf(kds): faster tickets",
    "refactor(sync): split module",
    "docs: how to tip",
    "test(order): more cases",
    "build: pin python",
    "ci: cache venv",
    "chore(deps): bump jinja2",
    "style: format",
    "revert: undo tips",
    "feat(order,menu): two scopes",
    "docs: readme\n\nBody text.\n\nBREAKING CHANGE: the README moved",
    "refactor: x\n\nBREAKING-CHANGE: dash form",
    "feat: with trailers\n\nBody\n\nRelease-Note: Tips.\nCo-authored-by: B <b@x>",
    "feat(api): squash (#12)",
    "Update README",
    "Merge branch 'main' into topic",
    "breaking change: lower case words",
    "WIP",
]
DIFFER = ["feat (order): space before scope", "feat(order) : space before colon", "feat(): empty"]


def cliff_context(repo: Path, tmp_path: Path) -> dict[str, dict[str, object]]:
    config = tmp_path / "cliff.toml"
    config.write_text(CLIFF_CONFIG)
    out = subprocess.run(
        [str(GIT_CLIFF), "--repository", str(repo), "--config", str(config), "--context"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {c["id"]: c for release in json.loads(out) for c in release["commits"]}


def test_kind_scope_breaking_agree_with_git_cliff(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    for message in AGREE + DIFFER:
        repo.commit(message)
    ours = {i.commit.sha: i.commit for i in generate_for_range(repo.path, None, "HEAD").items}
    theirs = cliff_context(repo.path, tmp_path)
    assert set(ours) == set(theirs)
    for sha, commit in ours.items():
        cliff = theirs[sha]
        message = commit.header
        if message in DIFFER:
            assert commit.conventional and not cliff["conventional"], message
            continue
        assert commit.conventional == cliff["conventional"], message
        if not commit.conventional:
            continue
        assert (commit.type if commit.type in TYPES else "other") == cliff["group"], message
        assert commit.scope == cliff["scope"], message
        assert commit.breaking == cliff["breaking"], message
        assert commit.subject == str(cliff["message"]).removesuffix(" (#12)"), message
