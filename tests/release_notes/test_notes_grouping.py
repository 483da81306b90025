"""build_release_notes: sections, filtering with reasons, contributors."""

from __future__ import annotations

import hashlib
import itertools

import pytest

from release_notes.commits import ParsedCommit, Person, parse_commit
from release_notes.config import NotesConfig
from release_notes.notes import ReleaseNotes, build_release_notes

ALICE = Person("Alice", "alice@example.com")
BOB = Person("Bob", "bob@example.com")
BOT = Person("dependabot[bot]", "49699333+dependabot[bot]@users.noreply.github.com")
_counter = itertools.count(1)


def sha() -> str:
    return hashlib.sha1(str(next(_counter)).encode()).hexdigest()


def commit(
    message: str, author: Person = ALICE, parents: tuple[str, ...] = (), sha_: str | None = None
) -> ParsedCommit:
    return parse_commit(sha_ or sha(), parents, author, "2024-07-01T10:00:00+09:00", message)


def linear(*messages: str, author: Person = ALICE) -> list[ParsedCommit]:
    """Commits oldest→newest, returned newest first like git log."""
    out: list[ParsedCommit] = []
    parent: tuple[str, ...] = ()
    for message in messages:
        c = commit(message, author, parent)
        out.append(c)
        parent = (c.sha,)
    return out[::-1]


CONFIG = NotesConfig(areas={"order": "Ordering", "kds": "Kitchen display"})


def build(commits: list[ParsedCommit], **kw: object) -> ReleaseNotes:
    kw.setdefault("config", CONFIG)
    return build_release_notes(commits, version="3.12.0", date="2024-07-01", **kw)  # type: ignore[arg-type]


def assert_each_once(notes: ReleaseNotes, commits: list[ParsedCommit]) -> None:
    seen = [i.commit.sha for i in notes.items] + [f.commit.sha for f in notes.filtered]
    assert sorted(seen) == sorted(c.sha for c in commits)


def test_sections_in_order_grouped_by_area() -> None:
    commits = linear(
        "chore: tidy",
        "fix(kds): ticket crash",
        "feat(order): tips",
        "feat(menu): allergens",
        "Update README",
        "docs: how to tip",
    )
    notes = build(commits)
    assert [s.title for s in notes.sections] == [
        "Features",
        "Fixes",
        "Documentation",
        "Other changes",
    ]
    features = notes.sections[0]
    assert [g.area for g in features.groups] == ["menu", "Ordering"]
    other = notes.sections[-1]
    assert sorted(i.commit.subject for g in other.groups for i in g.items) == [
        "Update README",
        "tidy",
    ]
    assert_each_once(notes, commits)


def test_breaking_and_for_stores() -> None:
    commits = linear(
        "feat(order)!: drop cash tips",
        "feat(kds): bump\n\nRelease-Note: Tickets show allergens.",
        "fix: x",
    )
    notes = build(commits)
    assert [i.commit.subject for i in notes.breaking] == ["drop cash tips"]
    assert [(g.area, [i.commit.release_note for i in g.items]) for g in notes.for_stores] == [
        ("Kitchen display", ["Tickets show allergens."])
    ]


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("feat: x\n\nRelease-Note: none", "release-note-none"),
        ("chore: x [skip changelog]", "skip-changelog"),
    ],
)
def test_filtered_with_reason(message: str, reason: str) -> None:
    commits = linear("feat: shown", message)
    notes = build(commits)
    assert [(f.commit.header.split("\n")[0], f.reason) for f in notes.filtered] == [
        (message.split("\n")[0], reason)
    ]
    assert_each_once(notes, commits)


def test_breaking_change_is_never_hidden_by_release_note_none() -> None:
    notes = build(linear("feat!: gone\n\nRelease-Note: none"))
    assert notes.filtered == [] and len(notes.breaking) == 1


def test_revert_pair_in_range_is_filtered() -> None:
    original = commit("feat: tips")
    revert = commit(
        f'Revert "feat: tips"\n\nThis reverts commit {original.sha}.', parents=(original.sha,)
    )
    notes = build([revert, original])
    assert {f.commit.sha: f.reason for f in notes.filtered} == {
        original.sha: "reverted",
        revert.sha: "reverted",
    }
    assert notes.items == []


def test_revert_of_revert_brings_change_back() -> None:
    a = commit("feat: tips")
    b = commit(f'Revert "feat: tips"\n\nThis reverts commit {a.sha}.', parents=(a.sha,))
    c = commit(f'Revert "Revert ..."\n\nThis reverts commit {b.sha[:10]}.', parents=(b.sha,))
    notes = build([c, b, a])
    assert [i.commit.sha for i in notes.items] == [a.sha]
    assert {f.commit.sha for f in notes.filtered} == {b.sha, c.sha}


def test_revert_of_commit_outside_range_is_shown() -> None:
    notes = build(linear(f'Revert "feat: old"\n\nThis reverts commit {"f" * 40}.'))
    assert len(notes.items) == 1 and notes.items[0].kind == "other"


def test_merge_commit_of_listed_pr_is_filtered_and_lends_its_pr_number() -> None:
    base = commit("chore: base")
    b1 = commit("feat(order): tips part 1", BOB, (base.sha,))
    b2 = commit("fix(order): tips part 2", BOB, (b1.sha,))
    main = commit("docs: unrelated (#5)", ALICE, (base.sha,))
    merge = commit("Merge pull request #42 from acme/tips\n\nTips", ALICE, (main.sha, b2.sha))
    commits = [merge, main, b2, b1]  # base is the --from commit: outside
    notes = build(commits)
    assert [(f.commit.sha, f.reason) for f in notes.filtered] == [(merge.sha, "merge")]
    assert "#42" in notes.filtered[0].detail and "2 commits" in notes.filtered[0].detail
    prs = {i.commit.sha: i.pr_number for i in notes.items}
    assert prs == {b1.sha: 42, b2.sha: 42, main.sha: 5}
    assert notes.pr_numbers == (5, 42)
    assert_each_once(notes, commits)


def test_merge_bringing_nothing_new_is_filtered() -> None:
    main = commit("feat: x")
    merge = commit("Merge branch 'release'", ALICE, (main.sha, "9" * 40))
    notes = build([merge, main])
    assert [f.reason for f in notes.filtered] == ["merge"]


def test_pr_merge_of_commits_outside_range_is_shown_with_title() -> None:
    main = commit("feat: x")
    merge = commit(
        "Merge pull request #7 from a/b\n\nfix(kds): reprint", ALICE, (main.sha, "9" * 40)
    )
    notes = build([merge, main])
    shown = {i.commit.subject: (i.kind, i.pr_number) for i in notes.items}
    assert shown["reprint"] == ("fix", 7)


@pytest.mark.parametrize(
    ("policy", "shown", "reason"), [("dependencies", 1, None), ("filter", 0, "bot")]
)
def test_bot_policy(policy: str, shown: int, reason: str | None) -> None:
    config = NotesConfig(bot_policy=policy)
    commits = linear("build: bump jinja2 from 3.1.3 to 3.1.4", author=BOT)
    notes = build(commits, config=config)
    assert len(notes.items) == shown
    if shown:
        assert notes.items[0].kind == "deps" and notes.sections[0].title == "Dependencies"
    else:
        assert notes.filtered[0].reason == reason
    assert notes.contributors == []


def test_contributors_and_first_timers() -> None:
    commits = linear(
        "feat: a",
        "feat: b\n\nCo-authored-by: Carol <carol@example.com>",
    ) + linear("fix: c", author=BOB)
    notes = build(commits, known_authors={"alice@example.com"})
    by_email = {c.email: (c.commits, c.first_time) for c in notes.contributors}
    assert by_email == {
        "alice@example.com": (2, False),
        "bob@example.com": (1, True),
        "carol@example.com": (1, True),
    }
    assert notes.contributors[0].email == "alice@example.com"


def test_no_known_authors_marks_nobody() -> None:
    notes = build(linear("feat: a"))
    assert [c.first_time for c in notes.contributors] == [False]


def test_links_from_config() -> None:
    config = NotesConfig(
        pr_url="https://github.com/acme/pos/pull/{number}",
        commit_url="https://github.com/acme/pos/commit/{sha}",
    )
    notes = build(linear("feat: tips (#12)"), config=config)
    item = notes.items[0]
    assert item.pr_url == "https://github.com/acme/pos/pull/12"
    assert item.commit_url == f"https://github.com/acme/pos/commit/{item.commit.sha}"


def test_counts() -> None:
    commits = linear("feat: a (#1)", "feat: b (#2)", "feat: c (#2)")
    notes = build(commits)
    assert (notes.commit_count, notes.pr_count) == (3, 2)
