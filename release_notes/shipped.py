"""Which commits of a range already shipped in the release the range starts from.

A range is git's ``A..B``: the commits reachable from ``B`` and not from ``A``. When ``A``
is a hotfix (``1.0.1`` on a branch off ``1.0.0``) or a release tagged on its own release
branch, ``A`` is not an ancestor of ``B``, and a fix that reached stores in ``A`` as a
cherry-pick sits in ``A..B`` under another sha. Such a commit is "already in A", found by:

1. ``git cherry-pick -x`` lines (:attr:`ParsedCommit.cherry_picked_from`): a commit of the
   range picked from a commit only ``A`` has, a commit only ``A`` has picked from a commit
   of the range, or both picked from the same commit;
2. patch ids (what ``git patch-id --stable`` prints, whitespace-insensitive): a commit of
   the range with the same patch as a commit only ``A`` has (a pick without ``-x``).

A merge commit found so (a PR merge picked with ``-x -m 1``) shipped the commits it brings
too: :func:`release_notes.notes.build_release_notes` lists them as already in ``A``.

"Only ``A`` has" is ``B..A``, usually a handful of commits. The work is done only when it
can find something, so a range on a straight line pays nothing:

- ``A`` not an ancestor of ``B``: one ``git log`` lists ``B..A`` with messages, one ``git
  log --name-only`` the files each commit of both sides changes (``A...B``, no merges).
  Two commits can only have the same patch when they change the same files, so only
  those pairs are diffed: one ``git diff-tree -p --stdin`` piped into one ``git patch-id
  --stable`` (four git processes in all, whatever the size of the range);
- ``A`` an ancestor of ``B``: nothing only ``A`` has; a commit of the range picked (``-x``)
  from a commit ``A`` holds is already in ``A`` (a stable branch merged forward into the
  main line): when the range has such lines, one ``git cat-file --batch-check`` and one
  ``git rev-list`` say which named commits ``A`` holds.

Not found: a pick without ``-x`` whose patch changed (a conflict resolved by hand), and,
with ``A`` an ancestor of ``B``, a commit of the range that was picked into ``A``'s branch
before it was merged into ``B``'s.
"""

from __future__ import annotations

import bisect
import contextlib
import subprocess
import threading
from collections.abc import Iterable, Sequence

from release_notes.commits import _CHERRY_PICK_RE, ParsedCommit
from release_notes.errors import NotesError
from release_notes.git_history import GitRepo, _finish, _git_message, _stop

__all__ = ["CHERRY_PICK", "SAME_PATCH", "find_shipped"]

CHERRY_PICK = "cherry-pick"
SAME_PATCH = "same patch"


def find_shipped(
    repo: GitRepo,
    from_sha: str,
    to_sha: str,
    commits: Sequence[ParsedCommit],
    *,
    from_is_ancestor: bool,
) -> dict[str, tuple[str, str]]:
    """``{sha of a commit of the range: (sha of the commit from holds, how)}``.

    ``how`` is :data:`CHERRY_PICK` or :data:`SAME_PATCH`. ``commits`` is the range
    ``from_sha..to_sha``.
    """
    if from_is_ancestor:
        return _picked_from_ancestor(repo, from_sha, commits)
    return _against_left_side(repo, from_sha, to_sha, commits)


class _Shas:
    """Full shas, found by a full or abbreviated (``-x`` lines may be short) sha."""

    def __init__(self, shas: Iterable[str]) -> None:
        self.full = set(shas)
        self._sorted: list[str] | None = None

    def find(self, sha: str) -> str | None:
        if sha in self.full:
            return sha
        if len(sha) >= 40:
            return None
        if self._sorted is None:
            self._sorted = sorted(self.full)
        i = bisect.bisect_left(self._sorted, sha)
        if i < len(self._sorted) and self._sorted[i].startswith(sha):
            return self._sorted[i]
        return None


def _against_left_side(
    repo: GitRepo, from_sha: str, to_sha: str, commits: Sequence[ParsedCommit]
) -> dict[str, tuple[str, str]]:
    messages = repo.popen(
        "log", "-z", "--format=%H%x1f%B", "--end-of-options", from_sha, f"^{to_sha}", "--"
    )
    names = repo.popen(
        "-c",
        "core.quotePath=true",
        "log",
        "--no-merges",
        "--no-renames",
        "--left-right",
        "--format=%x01%m%H",
        "--name-only",
        "--end-of-options",
        f"{from_sha}...{to_sha}",
        "--",
    )
    try:
        left_picks = _left_picks(messages)
        left_files, right_files = _changed_files(names)
    except BaseException:
        _stop(messages)
        _stop(names)
        raise

    shipped: dict[str, tuple[str, str]] = {}
    range_shas = _Shas(c.sha for c in commits)
    left_shas = _Shas(left_picks)
    # Both picked from the same commit, or one from the other.
    origin: dict[str, str] = {}
    for sha_left, picked in left_picks.items():
        origin[sha_left] = sha_left
        for sha in picked:
            origin.setdefault(sha, sha_left)
            mine = range_shas.find(sha)
            if mine is not None:
                shipped.setdefault(mine, (sha_left, CHERRY_PICK))
    origins: _Shas | None = None
    for c in commits:
        for sha in c.cherry_picked_from:
            left = left_shas.find(sha) or origin.get(sha)
            if left is None and len(sha) < 40:
                origins = origins or _Shas(origin)
                full = origins.find(sha)
                left = origin.get(full) if full else None
            if left is not None and c.sha not in shipped:
                shipped[c.sha] = (left, CHERRY_PICK)

    # The same patch: only commits changing the same files can have one.
    by_files: dict[frozenset[str], list[str]] = {}
    for sha, files in left_files.items():
        if files:
            by_files.setdefault(files, []).append(sha)
    candidates = {
        sha: files
        for sha, files in right_files.items()
        if files in by_files and sha not in shipped and sha in range_shas.full
    }
    if candidates:
        wanted_left = [sha for files in set(candidates.values()) for sha in by_files[files]]
        ids = _patch_ids(repo, [*wanted_left, *candidates])
        left_by_id: dict[str, str] = {}
        for sha in wanted_left:
            patch = ids.get(sha)
            if patch is not None:
                left_by_id.setdefault(patch, sha)
        for sha in candidates:
            patch = ids.get(sha)
            if patch is not None and patch in left_by_id:
                shipped[sha] = (left_by_id[patch], SAME_PATCH)
    return shipped


def _left_picks(proc: subprocess.Popen[bytes]) -> dict[str, tuple[str, ...]]:
    """``{sha: shas its -x lines name}`` for every commit of ``B..A``."""
    assert proc.stdout is not None
    out = proc.stdout.read()
    _finish(proc, "git log")
    picks: dict[str, tuple[str, ...]] = {}
    for record in out.decode("utf-8", "replace").split("\x00"):
        sha, sep, message = record.lstrip("\n").partition("\x1f")
        if not sep:
            continue
        named: tuple[str, ...] = ()
        if "cherry picked from" in message:
            named = tuple(s.lower() for s in _CHERRY_PICK_RE.findall(message))
        picks[sha] = named
    return picks


def _changed_files(
    proc: subprocess.Popen[bytes],
) -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """The files each non-merge commit changes, for the left (``<``) and right side."""
    assert proc.stdout is not None
    out = proc.stdout.read()
    _finish(proc, "git log")
    left: dict[str, frozenset[str]] = {}
    right: dict[str, frozenset[str]] = {}
    for record in out.decode("utf-8", "surrogateescape").split("\x01")[1:]:
        head, _, rest = record.partition("\n")
        side, sha = head[:1], head[1:].strip()
        files = frozenset(line for line in rest.split("\n") if line)
        (left if side == "<" else right)[sha] = files
    return left, right


def _patch_ids(repo: GitRepo, shas: list[str]) -> dict[str, str]:
    """``{commit sha: patch id}``: ``git diff-tree -p --stdin | git patch-id --stable``.

    The shas are written to ``diff-tree`` by a thread, so that neither side of the pipe
    waits on the other whatever their number. A commit with an empty diff has no id.
    """
    diff = repo.popen("diff-tree", "-p", "--root", "--no-renames", "--stdin", stdin=True)
    assert diff.stdin is not None and diff.stdout is not None
    try:
        ids = repo.popen("patch-id", "--stable", stdin_from=diff.stdout)
    except BaseException:
        _stop(diff)
        raise
    diff.stdout.close()  # patch-id holds the read end now

    payload = "".join(f"{sha}\n" for sha in dict.fromkeys(shas)).encode("ascii")
    stdin = diff.stdin

    def feed() -> None:
        with contextlib.suppress(OSError):  # git stopped early: its error is read below
            stdin.write(payload)
        with contextlib.suppress(OSError):
            stdin.close()

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    assert ids.stdout is not None and ids.stderr is not None
    out = ids.stdout.read()
    writer.join()
    err = diff.stderr.read() if diff.stderr is not None else b""
    status = diff.wait()
    if diff.stderr is not None:
        diff.stderr.close()
    if status != 0:
        _stop(ids)
        raise NotesError(f"git diff-tree failed: {_git_message(err, status)}")
    _finish(ids, "git patch-id")
    found: dict[str, str] = {}
    for line in out.decode("ascii", "replace").splitlines():
        patch, _, sha = line.partition(" ")
        if sha:
            found[sha.strip()] = patch
    return found


def _picked_from_ancestor(
    repo: GitRepo, from_sha: str, commits: Sequence[ParsedCommit]
) -> dict[str, tuple[str, str]]:
    """With ``from`` an ancestor of ``to``: the commits of the range picked (``-x``) from a
    commit ``from`` holds."""
    in_range = _Shas(c.sha for c in commits)
    named: dict[str, list[str]] = {}  # named sha → the range commits naming it
    for c in commits:
        for sha in c.cherry_picked_from:
            if in_range.find(sha) is None:
                named.setdefault(sha, []).append(c.sha)
    if not named:
        return {}
    # Which named commits exist (and their full shas), then which of them ``from`` holds:
    # ``rev-list <named> --not from`` lists those it does not hold.
    status, out, err = repo.run(
        "cat-file",
        "--batch-check=%(objectname) %(objecttype)",
        input="".join(f"{s}\n" for s in named).encode(),
    )
    if status != 0:
        raise NotesError(f"cannot read commits: {_git_message(err, status)}")
    full: dict[str, str] = {}
    for sha, line in zip(named, out.decode("ascii", "replace").splitlines(), strict=False):
        obj, _, kind = line.partition(" ")
        if kind == "commit":
            full[sha] = obj
    if not full:
        return {}
    revs = "".join(f"{s}\n" for s in full.values()) + f"^{from_sha}\n"
    status, out, err = repo.run("rev-list", "--stdin", input=revs.encode())
    if status != 0:
        raise NotesError(f"git rev-list failed: {_git_message(err, status)}")
    outside = set(out.decode("ascii", "replace").split())
    shipped: dict[str, tuple[str, str]] = {}
    for sha, obj in full.items():
        if obj not in outside:
            for mine in named[sha]:
                shipped.setdefault(mine, (obj, CHERRY_PICK))
    return shipped
