"""Notes between any two versions: hotfix branches, release branches, cherry-picks.

The range is git's ``A..B`` whether or not ``A`` is an ancestor of ``B``; a commit whose
change already shipped in ``A`` (a ``cherry-pick -x``, or the same patch) is listed as
"already in A", never as new; the previous release of ``B`` is the highest version below it
created no later than it, reachable or not. Every commit of the range is shown or filtered
exactly once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from release_notes import shipped as shipped_module
from release_notes.cli import generate
from release_notes.generate import generate_for_range, render_notes
from release_notes.notes import ReleaseNotes
from release_notes.render import to_json_dict
from tests.release_notes.git_repo_builder import GitRepo

BOB = "Bob Builder <bob@example.com>"


def accounted(notes: ReleaseNotes, repo: GitRepo, rev: str) -> None:
    """Every commit of git's range once: shown, or filtered with a reason."""
    expected = repo.git("rev-list", rev).split()
    data = to_json_dict(notes)
    seen = [c["sha"] for c in data["shown"]] + [c["sha"] for c in data["filtered"]]
    assert sorted(seen) == sorted(expected) and notes.commit_count == len(expected)


def subjects(notes: ReleaseNotes) -> list[str]:
    return sorted(i.commit.subject for i in notes.items)


def shipped_subjects(notes: ReleaseNotes) -> list[tuple[str, str]]:
    return sorted((s.item.commit.subject, s.how) for s in notes.already_shipped)


@pytest.fixture
def hotfix(tmp_path: Path) -> GitRepo:
    """1.0.0 → a hotfix 1.0.1 on its branch (a fix picked from main with -x, one made on
    the branch and picked into main with -x, one picked without -x, one picked and changed)
    → 1.1.0 on main; later a hotfix 1.0.2 tagged after 1.1.0."""
    r = GitRepo(tmp_path / "hotfix")
    r.commit("Initial commit", files={"version": "1.0.0\n", "kds.py": "a\nb\nc\n"})
    r.tag("v1.0.0", annotated=True)
    fix_x = r.commit(
        "fix(kds): reprint tickets once\n\nTickets printed twice after a reconnect.",
        files={"kds.py": "a\nB\nc\n"},
    )
    fix_quiet = r.commit("fix(printer): quiet beeper", files={"printer.py": "quiet\n"})
    fix_changed = r.commit("fix(menu): allergens", files={"menu.py": "allergens\n"})
    r.commit("feat(order): tips", files={"order.py": "tips\n"}, author=BOB)
    r.branch("hotfix/1.0.x", "v1.0.0")
    r.cherry_pick(fix_x)  # -x: "(cherry picked from commit <fix_x>)"
    r.cherry_pick(fix_quiet, record=False)  # no -x: found by its patch id
    r.commit("fix(menu): allergens", files={"menu.py": "allergens, adapted\n"})  # another patch
    fix_on_branch = r.commit("fix(sync): retry once", files={"sync.py": "retry\n"})
    r.commit("chore(release): 1.0.1", files={"version": "1.0.1\n"})
    r.tag("v1.0.1", annotated=True)
    r.checkout("main")
    r.cherry_pick(fix_on_branch)  # made on the hotfix branch, picked into main with -x
    r.commit("feat(kds): bump bar", files={"bar.py": "x\n"})
    r.commit("chore(release): 1.1.0", files={"version": "1.1.0\n"})
    r.tag("v1.1.0", annotated=True)
    r.checkout("hotfix/1.0.x")
    r.commit("fix(auth): pin lockout", files={"auth.py": "pin\n"})
    r.tag("v1.0.2", annotated=True)  # a later hotfix of the older line
    r.checkout("main")
    assert fix_changed
    return r


def test_from_a_hotfix_that_is_not_an_ancestor(hotfix: GitRepo) -> None:
    notes = generate_for_range(hotfix.path, "v1.0.1", "v1.1.0")
    assert shipped_subjects(notes) == [
        ("quiet beeper", "same patch"),
        ("reprint tickets once", "cherry-pick"),
        ("retry once", "cherry-pick"),
    ]
    # The fix picked with a different patch is new as far as git can tell.
    assert subjects(notes) == ["1.1.0", "allergens", "bump bar", "tips"]
    accounted(notes, hotfix, "v1.0.1..v1.1.0")
    markdown = render_notes(notes)
    already = markdown[markdown.index("## Already in v1.0.1") : markdown.index("## Contributors")]
    assert already.count("\n- ") == 3
    assert "- reprint tickets once (`" in already and "— already in v1.0.1 as `" in already
    assert "reprint tickets once" not in markdown[: markdown.index("## Already")]
    data = to_json_dict(notes)
    assert data["counts"]["already_shipped"] == 3 and data["shipped_in"] == "v1.0.1"
    reasons = {f["subject"]: (f["reason"], f["same_as"]) for f in data["filtered"]}
    picked = hotfix.git("log", "-1", "--format=%H", "--grep=reprint", "v1.0.1")
    assert reasons["reprint tickets once"] == ("already-shipped", picked)


def test_cli_from_a_hotfix(hotfix: GitRepo) -> None:
    args = ["--repo", str(hotfix.path), "--from", "v1.0.1", "--to", "v1.1.0"]
    result = CliRunner().invoke(generate, args)
    assert result.exit_code == 0, result.stderr
    assert "Changes from `v1.0.1` to `v1.1.0`." in result.stdout
    assert "## Already in v1.0.1" in result.stdout
    result = CliRunner().invoke(generate, [*args, "--format", "json"])
    assert json.loads(result.stdout)["counts"]["already_shipped"] == 3


def test_previous_release_is_the_hotfix(hotfix: GitRepo) -> None:
    notes = generate_for_range(hotfix.path, None, "v1.1.0")
    assert notes.from_ref == "v1.0.1"  # not v1.0.0 (reachable) nor v1.0.2 (tagged later)
    assert len(notes.already_shipped) == 3
    assert generate_for_range(hotfix.path, None, "v1.0.2").from_ref == "v1.0.1"
    assert generate_for_range(hotfix.path, None, "v1.0.1").from_ref == "v1.0.0"
    # A branch head has no version: the highest release there is (v1.1.0 here)...
    assert generate_for_range(hotfix.path, None, "hotfix/1.0.x").from_ref == "v1.1.0"
    # ...unless the caller says what it releases it as.
    head = generate_for_range(hotfix.path, None, "hotfix/1.0.x", version="1.0.2")
    assert head.from_ref == "v1.0.1" and head.version == "1.0.2"


def test_a_hotfix_release_itself(hotfix: GitRepo) -> None:
    notes = generate_for_range(hotfix.path, "v1.0.0", "v1.0.1")
    assert notes.already_shipped == [] and len(notes.items) == 5
    reprint = next(i for i in notes.items if i.commit.subject == "reprint tickets once")
    # The -x line is recorded, never the excerpt.
    assert reprint.commit.cherry_picked_from and reprint.commit.body == (
        "Tickets printed twice after a reconnect."
    )
    retry = next(i for i in notes.items if i.commit.subject == "quiet beeper")
    assert retry.commit.body is None
    accounted(notes, hotfix, "v1.0.0..v1.0.1")


def test_a_straight_range_runs_no_patch_ids(
    hotfix: GitRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no(*args: object, **kwargs: object) -> dict[str, str]:
        raise AssertionError("patch ids computed for a straight range")

    monkeypatch.setattr(shipped_module, "_patch_ids", no)
    monkeypatch.setattr(shipped_module, "_against_left_side", no)
    notes = generate_for_range(hotfix.path, "v1.0.0", "v1.1.0")
    assert notes.already_shipped == []


def test_backwards_range_is_empty(hotfix: GitRepo) -> None:
    from release_notes.errors import NotesError

    with pytest.raises(NotesError, match=r"v1\.0\.0 is already in v1\.1\.0"):
        generate_for_range(hotfix.path, "v1.1.0", "v1.0.0")


@pytest.fixture
def release_branches(tmp_path: Path) -> GitRepo:
    """Each release cut on its own branch and tagged there (never on main); fixes are
    picked from main into the release branch with -x, as pytest's backports are."""
    r = GitRepo(tmp_path / "branches")
    r.commit("Initial commit", files={"version": "0.0.0\n"})
    r.commit("feat(order): tips", files={"order.py": "tips\n"})
    r.branch("release/1.0")
    r.commit("chore(release): 1.0.0", files={"version": "1.0.0\n"})
    r.tag("v1.0.0", annotated=True)
    r.checkout("main")
    r.commit("feat(kds): colours", files={"kds.py": "colours\n"})
    fix = r.commit("fix(order): rounding", files={"order.py": "tips, rounded\n"})
    r.checkout("release/1.0")
    r.cherry_pick(fix)
    r.commit("chore(release): 1.0.1", files={"version": "1.0.1\n"})
    r.tag("v1.0.1", annotated=True)
    r.checkout("main")
    r.commit("feat(menu): photos", files={"menu.py": "photos\n"})
    r.branch("release/1.1")
    r.commit("chore(release): 1.1.0", files={"version": "1.1.0\n"})
    r.tag("v1.1.0", annotated=True)
    r.checkout("main")
    return r


def test_release_branches(release_branches: GitRepo) -> None:
    notes = generate_for_range(release_branches.path, None, "v1.1.0")
    assert notes.from_ref == "v1.0.1"
    assert subjects(notes) == ["1.1.0", "colours", "photos"]
    assert shipped_subjects(notes) == [("rounding", "cherry-pick")]
    accounted(notes, release_branches, "v1.0.1..v1.1.0")
    # On the release branch itself the picked fix is new in 1.0.1: main's commit it names
    # is not in 1.0.0.
    patch = generate_for_range(release_branches.path, None, "v1.0.1")
    assert patch.from_ref == "v1.0.0"
    assert subjects(patch) == ["1.0.1", "rounding"] and patch.already_shipped == []


def test_a_pick_of_a_commit_the_previous_release_holds(tmp_path: Path) -> None:
    """A stable branch merged forward into main (``from`` an ancestor): main's -x pick of a
    fix the stable release already had is already in it."""
    r = GitRepo(tmp_path / "forward")
    r.commit("Initial commit", files={"version": "1.0.0\n"})
    r.tag("v1.0.0")
    r.branch("stable")
    fix = r.commit("fix(kds): timeout", files={"kds.py": "timeout\n"})
    r.commit("chore(release): 1.0.1", files={"version": "1.0.1\n"})
    r.tag("v1.0.1")
    r.checkout("main")
    r.cherry_pick(fix)
    r.commit("feat: new", files={"new.py": "x\n"})
    r.merge("stable", "Merge branch 'stable'")
    r.tag("v1.1.0")
    notes = generate_for_range(r.path, "v1.0.1", "v1.1.0")
    assert shipped_subjects(notes) == [("timeout", "cherry-pick")]
    assert subjects(notes) == ["new"]
    accounted(notes, r, "v1.0.1..v1.1.0")


def test_a_picked_merge_shipped_the_commits_it_brings(tmp_path: Path) -> None:
    """pytest's backports of whole PRs (9.0.3..9.1.0): the release branch picks the PR's
    merge commit (``cherry-pick -x -m 1``); the PR's own commits on main are already in
    the release, though none of them is named by a -x line nor has the picked patch."""
    r = GitRepo(tmp_path / "picked-merge")
    r.commit("Initial commit", files={"version": "1.0.0\n"})
    r.tag("v1.0.0", annotated=True)
    r.branch("pr/14184")
    r.commit("docs: add seealso link", files={"docs.md": "see also\n"})
    r.commit("docs: fix the link", files={"docs.md": "see also, fixed\n"})
    r.checkout("main")
    r.commit("feat(menu): photos", files={"menu.py": "photos\n"})
    merge = r.merge("pr/14184", "Merge pull request #14184 from him2him2/doc-link")
    r.branch("release/1.0.x", "v1.0.0")
    r.cherry_pick(merge, mainline=1)
    r.commit("chore(release): 1.0.1", files={"version": "1.0.1\n"})
    r.tag("v1.0.1", annotated=True)
    r.checkout("main")
    r.commit("chore(release): 1.1.0", files={"version": "1.1.0\n"})
    r.tag("v1.1.0", annotated=True)
    notes = generate_for_range(r.path, None, "v1.1.0")
    assert notes.from_ref == "v1.0.1"
    assert subjects(notes) == ["1.1.0", "photos"]
    assert shipped_subjects(notes) == [
        ("add seealso link", "cherry-pick"),
        ("fix the link", "cherry-pick"),
    ]
    accounted(notes, r, "v1.0.1..v1.1.0")
