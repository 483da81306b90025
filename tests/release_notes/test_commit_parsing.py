"""Tables of real-world commit messages and what :func:`parse_message` makes of them."""

from __future__ import annotations

import pytest

from release_notes.commits import Person, parse_commit, parse_message

# message, type, scope, breaking, subject
CONVENTIONAL = [
    ("feat(order): add tip entry", "feat", "order", False, "add tip entry"),
    ("fix: crash on empty cart", "fix", None, False, "crash on empty cart"),
    ("feat(order)!: drop legacy tips", "feat", "order", True, "drop legacy tips"),
    ("feat!: new sync protocol", "feat", None, True, "new sync protocol"),
    ("Feat(Order): capitalised type", "feat", "Order", False, "capitalised type"),
    ("FIX: shouting", "fix", None, False, "shouting"),
    ("fix:no space after colon", "fix", None, False, "no space after colon"),
    ("feat (order): space before scope", "feat", "order", False, "space before scope"),
    ("feat(order) : space before colon", "feat", "order", False, "space before colon"),
    ("feat( order ): padded scope", "feat", "order", False, "padded scope"),
    ("  feat(kds):   padded subject  ", "feat", "kds", False, "padded subject"),
    ("feat(): empty scope", "feat", None, False, "empty scope"),
    ("feat(order,menu): two scopes", "feat", "order,menu", False, "two scopes"),
    ("perf(kds): faster ticket render", "perf", "kds", False, "faster ticket render"),
    (
        "chore(deps): bump jinja2 from 3.1.3 to 3.1.4",
        "chore",
        "deps",
        False,
        "bump jinja2 from 3.1.3 to 3.1.4",
    ),
    ("build(deps-dev): bump ruff", "build", "deps-dev", False, "bump ruff"),
    ("feat(order): add tips (#123)", "feat", "order", False, "add tips"),
    ("fix(api): handle `null` price: zero", "fix", "api", False, "handle `null` price: zero"),
    (
        "docs: readme\n\nBody.\n\nBREAKING CHANGE: the README moved",
        "docs",
        None,
        True,
        "readme",
    ),
    ("refactor: x\n\nBREAKING-CHANGE: dash form", "refactor", None, True, "x"),
    ("chore: x\n\nbody\n\nBREAKING CHANGES: plural", "chore", None, True, "x"),
]

# message, expected subject (non-conventional: kind "other", never dropped)
NOT_CONVENTIONAL = [
    ("Update README.md", "Update README.md"),
    ("Merge branch 'main' into feature/tips", "Merge branch 'main' into feature/tips"),
    ('Revert "feat(order): add tips"', 'Revert "feat(order): add tips"'),
    ("breaking change: lower case words", "breaking change: lower case words"),
    ("WIP", "WIP"),
    ("fix typo (#44)", "fix typo"),
    ("", "(no commit message)"),
    ("\n\n\n", "(no commit message)"),
    ("Initial commit", "Initial commit"),
]

KIND = [
    ("feat: x", "feat"),
    ("feature: x", "feat"),
    ("fix: x", "fix"),
    ("hotfix(pos): x", "fix"),
    ("perf: x", "perf"),
    ("refactor: x", "refactor"),
    ("docs: x", "docs"),
    ("test: x", "test"),
    ("ci: x", "build"),
    ("build: x", "build"),
    ("chore(deps): x", "deps"),
    ("fix(deps): x", "deps"),
    ("chore: x", "other"),
    ("style: x", "other"),
    ("release: 3.12.0", "other"),
    ("Update deps", "other"),
]

PR_NUMBERS = [
    ("feat(order): add tips (#123)", 123),
    ("fix: thing (#7)  ", 7),
    ("fix: thing ( #8 )", 8),
    ("Merge pull request #4512 from acme/feat/tips\n\nfeat(order): tips", 4512),
    ("merge pull request #9 from x/y", 9),
    ("fix: crash\n\nSee merge request pos/app!77", 77),
    ("fix: mentions #123 in the middle", None),
    ("fix: crash (see #12) now", None),
    ("chore: nothing", None),
]

ISSUE_REFS = [
    ("fix: crash\n\nFixes #12", ("#12",)),
    ("fix: crash\n\nCloses #12, #13 and #14", ("#12", "#13", "#14")),
    ("fix: crash\n\nRefs ABC-123", ("ABC-123",)),
    ("fix: crash\n\nRefs: POS-9", ("POS-9",)),
    ("fix: crash\n\nresolves acme/pos#55", ("acme/pos#55",)),
    ("fix: crash, fixes #3 (#99)", ("#3",)),
    ("fix: utf-8 receipts\n\nsee utf-8 docs", ()),
    ("feat: tips (#99)", ()),
    ("fix: x\n\nRelated to ORD-1\nPart of #2", ("ORD-1", "#2")),
]


@pytest.mark.parametrize(("message", "type_", "scope", "breaking", "subject"), CONVENTIONAL)
def test_conventional(
    message: str, type_: str, scope: str | None, breaking: bool, subject: str
) -> None:
    parsed = parse_message(message)
    assert (parsed["type"], parsed["scope"], parsed["breaking"], parsed["subject"]) == (
        type_,
        scope,
        breaking,
        subject,
    )


@pytest.mark.parametrize(("message", "subject"), NOT_CONVENTIONAL)
def test_not_conventional_goes_to_other(message: str, subject: str) -> None:
    parsed = parse_message(message)
    assert parsed["type"] is None
    assert parsed["kind"] == "other"
    assert parsed["subject"] == subject


@pytest.mark.parametrize(("message", "kind"), KIND)
def test_kind(message: str, kind: str) -> None:
    assert parse_message(message)["kind"] == kind


@pytest.mark.parametrize(("message", "number"), PR_NUMBERS)
def test_pr_number(message: str, number: int | None) -> None:
    assert parse_message(message)["pr_number"] == number


@pytest.mark.parametrize(("message", "refs"), ISSUE_REFS)
def test_issue_refs(message: str, refs: tuple[str, ...]) -> None:
    assert parse_message(message)["issue_refs"] == refs


def test_breaking_description_from_footer_and_bang() -> None:
    parsed = parse_message("feat!: new api\n\nBREAKING CHANGE: clients must\nupgrade to v2")
    assert parsed["breaking_description"] == "clients must upgrade to v2"
    assert parse_message("feat!: new api")["breaking_description"] == "new api"


def test_breaking_footer_must_be_upper_case() -> None:
    assert parse_message("feat: x\n\nbreaking change: not per spec")["breaking"] is False


@pytest.mark.parametrize(
    ("message", "co_authors"),
    [
        (
            "feat: x\n\nCo-authored-by: Bob B <bob@example.com>\n"
            "co-authored-by: Carol <carol@example.com>",
            (Person("Bob B", "bob@example.com"), Person("Carol", "carol@example.com")),
        ),
        (
            "feat: x\n\nCo-Authored-By: <anon@example.com>",
            (Person("anon@example.com", "anon@example.com"),),
        ),
        ("feat: x\n\nCo-authored-by: nobody", ()),
    ],
)
def test_co_authors(message: str, co_authors: tuple[Person, ...]) -> None:
    assert parse_message(message)["co_authors"] == co_authors


@pytest.mark.parametrize(
    ("message", "note", "is_none"),
    [
        ("feat: x\n\nRelease-Note: Tips on the order screen.", "Tips on the order screen.", False),
        (
            "feat: x\n\nbody\n\nRelease-Note: Tips can be entered\n  on the order screen.\n"
            "Co-authored-by: Bob <b@x>",
            "Tips can be entered on the order screen.",
            False,
        ),
        (
            "feat: x\n\nRelease-Note: Tips can be entered\nfrom the handy too.\nRefs: POS-1",
            "Tips can be entered from the handy too.",
            False,
        ),
        ("feat: x\n\nRelease-Note: none", None, True),
        ("feat: x\n\nRelease-Note: NONE", None, True),
        ("feat: x\n\nrelease-note: None.", None, True),
        ("feat: x\n\nRelease note: Lower form.", "Lower form.", False),
        (
            "feat: x\n\n```release-note\nFenced note\nover lines.\n```",
            "Fenced note over lines.",
            False,
        ),
        ("feat: x\n\nThe release is next week.", None, False),
    ],
)
def test_release_note(message: str, note: str | None, is_none: bool) -> None:
    parsed = parse_message(message)
    assert (parsed["release_note"], parsed["release_note_none"]) == (note, is_none)


@pytest.mark.parametrize(
    ("message", "skip"),
    [
        ("chore: bump [skip changelog]", True),
        ("chore: bump\n\n[changelog skip]", True),
        ("chore: bump [no changelog]", True),
        ("chore: bump [Skip-Changelog]", True),
        ("chore: bump [skip ci]", False),
        ("docs: changelog for 3.12", False),
    ],
)
def test_skip_changelog(message: str, skip: bool) -> None:
    assert parse_message(message)["skip_changelog"] is skip


def test_revert_target() -> None:
    sha = "a" * 40
    parsed = parse_message(f'Revert "feat: tips"\n\nThis reverts commit {sha}.')
    assert parsed["reverts"] == sha
    assert parse_message('Revert "x"\n\nThis reverts commit ABCDEF1.')["reverts"] == "abcdef1"


def test_body_first_paragraph() -> None:
    parsed = parse_message("feat: x\n\nFirst line\nwrapped here.\n\nSecond paragraph.")
    assert parsed["body"] == "First line wrapped here."
    assert parse_message("feat: x\n\nFixes: #1\nCo-authored-by: A <a@x>")["body"] is None
    assert parse_message("feat: x")["body"] is None


# A GitHub squash merge: the list of the squashed commits, the first one's body, the
# others' bodies, a separator and the co-authors (the shape of git-cliff's #1456 and #1487).
SQUASH = (
    "test(fixtures): add include-path tests (#1456)\n\n"
    "* test(fixtures): add include-path tests\n\n"
    "Add two fixture tests for --include-path with several globs.\n\n"
    "Signed-off-by: N <n@x>\n\n"
    "* fix(fixtures): add trailing newline\n\n"
    "This reverts commit abdc8ac6c015c172cf79cadbae5522ff7cad8042.\n\n"
    "---------\n\n"
    "Co-authored-by: niklasmarderx <niklasmarderx@users.noreply.github.com>\n"
)


@pytest.mark.parametrize(
    ("message", "excerpt"),
    [
        # Only the list of the squashed commits: no excerpt (never "* feat(context): ...").
        (
            "feat(context): add per-commit statistics (#1487)\n\n"
            "* feat(context): add per-commit statistics\n\n"
            "* test(fixtures): add test fixture\n\n---------\n\n"
            "Co-authored-by: O <o@x>\n",
            None,
        ),
        (
            "feat(tracing): migrate (#1488)\n\n* chore: initial draft commit\n\n"
            "Signed-off-by: S <s@x>\n\n* feat: add spans\n\nSigned-off-by: S <s@x>\n",
            None,
        ),
        # The first squashed commit's body describes the change; later ones never count.
        (SQUASH, "Add two fixture tests for --include-path with several globs."),
        # A paragraph ending with a colon introduces a list: a short list is inlined...
        (
            "feat(config): more config locations (#1448)\n\n"
            "**git-cliff** now looks for these files in this order:\n\n"
            "- `cliff.toml`\n- `.cliff.toml`\n- `$HOME/.config/cliff.toml`\n\n"
            "Co-authored-by: O <o@x>\n",
            "**git-cliff** now looks for these files in this order: `cliff.toml`, "
            "`.cliff.toml`, `$HOME/.config/cliff.toml`.",
        ),
        # ...a code block is not: the sentences before the introduction stay...
        (
            "feat: x\n\nAdds an option. It is set like this:\n\n```toml\na = 1\n```\n",
            "Adds an option.",
        ),
        # ...and a paragraph that is only an introduction gives way to the next prose.
        (
            "feat(git): processing order (#1485)\n\n"
            "This commit adds a configurable `processing_order` option:\n\n"
            "```toml\n[git]\n\nprocessing_order = []\n```\n\n"
            "Useful for custom preprocessors.\n",
            "Useful for custom preprocessors.",
        ),
        ("feat: x\n\nIt changes the following:\n\n```\ncode\n```\n", None),
        # A list too long to inline.
        ("feat: x\n\nFiles:\n" + "".join(f"- file{i}\n" for i in range(12)), None),
        # A sentence that introduces a list in the same paragraph.
        (
            "chore(deps): bump a from 1 to 2\n\nBumps [a](https://x) from 1 to 2.\n"
            "- [Release notes](https://x/r)\n- [Commits](https://x/c)\n",
            "Bumps [a](https://x) from 1 to 2.",
        ),
        # ``git cherry-pick -x``: the line is never the excerpt, and never in it.
        ("fix: reprint\n\n(cherry picked from commit d101041aaaa)\n", None),
        (
            "fix: reprint\n\nTickets print twice.\n\n(cherry picked from commit d101041aaaa)\n",
            "Tickets print twice.",
        ),
        (
            "fix: reprint\n\nTickets print twice.\n(cherry picked from commit d101041aaaa)\n",
            "Tickets print twice.",
        ),
        # A pull-request template: headings and comments are not prose.
        (
            "feat: x (#3)\n\n## Summary\n<!-- say what\n\nand why -->\nAdds tips.\n",
            "Adds tips.",
        ),
        ("feat: x\n\n    indented code\n\n> a quote\n\nProse.", "Prose."),
    ],
)
def test_excerpt_is_whole_prose(message: str, excerpt: str | None) -> None:
    assert parse_message(message)["body"] == excerpt


def test_excerpt_is_cut_after_a_whole_sentence() -> None:
    sentence = "The order screen keeps the cart when the network drops. "
    parsed = parse_message("fix: x\n\n" + sentence * 40)
    body = str(parsed["body"])
    assert len(body) <= 1_000 and body.endswith("drops.")
    one_long = "word " * 400  # one "sentence" longer than the cap: cut at a word
    body = str(parse_message("fix: x\n\n" + one_long)["body"])
    assert len(body) <= 1_000 and body.endswith("word…")


def test_cherry_picked_from() -> None:
    full = "d101041" + "0" * 33
    parsed = parse_message(f"fix: a\n\nBody.\n\n(cherry picked from commit {full})\n")
    assert parsed["cherry_picked_from"] == (full,)
    twice = "fix: a\n\nSigned-off-by: A <a@x>\n(cherry picked from commit ABCDEF1)\n"
    twice += "(cherry picked from commit 1234567)"
    assert parse_message(twice)["cherry_picked_from"] == ("abcdef1", "1234567")
    assert (
        parse_message("fix: mentions cherry picked from commit abcdef1")["cherry_picked_from"] == ()
    )


def test_no_excerpt_ends_on_a_colon_or_holds_a_cherry_pick_line() -> None:
    from tests.release_notes.test_parser_equivalence import _corpus

    for message in _corpus(3000):
        body = parse_message(message)["body"]
        if body is not None:
            text = str(body)
            assert not text.endswith(":"), message
            assert "cherry picked from commit" not in text, message


def test_merge_commit_takes_pr_title() -> None:
    commit = parse_commit(
        "b" * 40,
        ("c" * 40, "d" * 40),
        Person("A", "a@x"),
        "",
        "Merge pull request #12 from acme/tips\n\nfeat(order): tips on the order screen",
    )
    assert commit.is_merge
    assert (commit.pr_number, commit.merge_branch) == (12, "acme/tips")
    assert (commit.type, commit.scope, commit.subject) == (
        "feat",
        "order",
        "tips on the order screen",
    )


def test_huge_body_is_capped() -> None:
    body = "word " * 400_000 + "\n\nRelease-Note: still found\n"
    parsed = parse_message("feat: huge\n\n" + body)
    assert parsed["body"] is not None and len(str(parsed["body"])) <= 1_000
    assert parsed["release_note"] == "still found"


def test_replacement_characters_and_crlf() -> None:
    parsed = parse_message("fix(printer): caf\ufffd receipts\r\n\r\nBody\r\n")
    assert parsed["subject"] == "caf\ufffd receipts"
    assert parsed["body"] == "Body"


def test_root_commit() -> None:
    commit = parse_commit("e" * 40, (), Person("A", "a@x"), "", "Initial commit")
    assert commit.is_root and not commit.is_merge
