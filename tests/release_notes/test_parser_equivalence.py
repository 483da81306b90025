"""The optimised parser gives exactly what the straightforward reference parser gives.

``reference_commits.py`` is the parser as it was before the hot path was tuned (a frozen
copy); every message shape of the benchmark generator and the parsing tables goes through
both and the results must be identical, field by field.
"""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest

from release_notes.commits import FIELDS, Person, parse_commit
from tests.release_notes import reference_commits as reference
from tests.release_notes.test_commit_parsing import (
    CONVENTIONAL,
    ISSUE_REFS,
    KIND,
    NOT_CONVENTIONAL,
    PR_NUMBERS,
)

_BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "release_notes_bench.py"


def _bench_messages(count: int) -> list[str]:
    spec = importlib.util.spec_from_file_location("release_notes_bench", _BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rng = random.Random(5)
    return [bench._message(rng, 1000 + i, in_pr_branch=i % 3 == 0).decode() for i in range(count)]


def _corpus(count: int) -> list[str]:
    """Messages shaped like the benchmark's, plus edge cases built from parsing keywords."""
    rng = random.Random(11)
    pieces = [
        "feat(order): add tips",
        "fix!: drop v1",
        "Merge pull request #12 from org/topic",
        'Revert "feat: x"',
        "chore(deps): bump a (#7)",
        "docs: (#3)",
        "fix: a (#1) (#2)",
        "feat: b ( (#3 )\u00a0",
        "fix(x): c (d)\t( # 5 ) ",
        "(#6)",
        "e (f) g)",
        "Update h (#7)x)",
        "feat: line one\n\nline  two\twith\u2003odd\x1fspaces \nand more\n",
        "Fixes #12, #13 and org/repo#14",
        "Refs POS-123",
        "see also ABC-9",
        "BREAKING CHANGE: gone",
        "BREAKING-CHANGE #x",
        "Co-authored-by: Dev <dev@example.com>",
        "co-authored-by:<x@y>",
        "Release-Note: Staff can tip.\n  On all devices.",
        "Release-Note: none",
        "```release-note\nFenced note\n```",
        "This reverts commit abcdef1234567.",
        "See merge request group/app!42",
        "[skip changelog]",
        "[no changelog]",
        "word-1 and #2 in prose",
        "caf\ufffd r\u00e9sum\u00e9 \u0663",
        "```\ncode\n```",
        "Signed-off-by: A <a@b>",
        "",
        "   ",
        "\r\n",
        "x" * 300,
        "feat(a:b): colon in the scope",
        "feat : spaced (#8)",
        "fix(ui)!:\tafter a tab",
        "feat:\u00a0no-break space first",
        "feat(x)!:   ",
        "  perf ( order ) ! : padded",
        "Update README: not conventional",
        "mErGe pull request #5 from a/b",
        "Merge branch 'main' into topic",
        "fix: x (# 9)",
        "fix: y (#\u0661\u0662)",
        "Fixes #21 and #22 " + "word " * 250 + "see ABC-7, org/r#3 & #21",
        "(cherry picked from commit 0123456789abcdef0123456789abcdef01234567)",
        "(cherry picked from commit ABCDEF1)",
        "* feat(x): a squashed commit",
        "---------",
        "It looks in this order:",
        "- one\n- two",
        "    indented code",
        "## Summary",
        "<!-- template -->",
        "Done. Then:",
    ]
    out = []
    for _ in range(count):
        parts = [rng.choice(pieces) for _ in range(rng.randint(1, 6))]
        seps = [rng.choice(["\n", "\n\n", " ", "\r\n"]) for _ in parts]
        out.append("".join(p + s for p, s in zip(parts, seps, strict=True)))
    return out


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if hasattr(value, "email"):
        return ("person", value.name, value.email)  # type: ignore[attr-defined]
    return value


def _fields(commit: object) -> dict[str, object]:
    return {name: _plain(getattr(commit, name)) for name in FIELDS}


@pytest.mark.parametrize("parents", [(), ("a" * 40,), ("a" * 40, "b" * 40)])
def test_same_result_as_the_reference_parser(parents: tuple[str, ...]) -> None:
    tables = [*CONVENTIONAL, *NOT_CONVENTIONAL, *KIND, *PR_NUMBERS, *ISSUE_REFS]
    huge = "log line of a pasted stack trace\n" * 9000
    messages = [case[0] for case in tables] + _corpus(4000) + _bench_messages(2000)
    messages += [
        f"fix: huge (#9)\n\nFirst paragraph.\n{huge}Release-Note: Tips.\nFixes #7\n",
        f"\n\nfeat: huge\n\n\n{huge}\n\n\n",
        f"Merge pull request #3 from a/b\n\nTitle\n\n{huge}[skip changelog]",
        f"{huge}",
        "\n\n\n",
        "x\n\n\n\n",
        "\nx\ny\n",
    ]
    for message in messages:
        new = parse_commit("f" * 40, parents, Person("A", "a@x"), "2024-01-01", message)
        old = reference.parse_commit(
            "f" * 40, parents, reference.Person("A", "a@x"), "2024-01-01", message
        )
        assert _fields(new) == _fields(old), message
