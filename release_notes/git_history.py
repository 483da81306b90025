"""Read a commit range from a git repository with as few git processes as possible.

Git runs through GitPython's ``Git.execute(..., as_process=True)``, reading the process's
output as a stream (GitPython is imported when git first runs, so importing the package
stays cheap). A range costs one ``git log`` that streams the range (fixed ``0x1f`` field
separators, NUL-terminated records, parsed as they arrive), one ``git cat-file
--batch-check`` that resolves and type-checks both refs (object headers only, never a
whole commit; when both ends are given it runs while ``git log`` already walks, see
:func:`open_range`) and one ``git log`` over the older history for the first-time
contributors, started with the range's log and read once the range is parsed. Whether
``from`` is an ancestor of ``to`` is read from the range's own ``--boundary`` records
instead of a ``git merge-base`` process (it need not be: a range is git's ``from..to``,
and :mod:`release_notes.shipped` then finds what ``from`` already holds). Co-authors are
mapped through ``.mailmap`` by one ``git check-mailmap`` when a mailmap may exist. Every
failure is a :class:`NotesError` with a one-line message.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, cast

from release_notes.commits import ParsedCommit, Person, parse_commit
from release_notes.errors import NotesError
from versioning import InvalidVersion, Version, parse_version

__all__ = [
    "LOG_FORMAT",
    "AuthorScan",
    "CommitLog",
    "Deadline",
    "GitRepo",
    "NotesError",
    "ResolvedRange",
    "first_time_authors",
    "iter_commits",
    "map_co_authors",
    "open_range",
    "open_repo",
    "previous_release_tag",
    "resolve_range",
]

# sha, parents, author name and email (after .mailmap), author date, raw message.
LOG_FORMAT = "%H%x1f%P%x1f%aN%x1f%aE%x1f%aI%x1f%B"
# A range adds the boundary mark (``-`` for an excluded parent) and the committer date
# (the notes' default date, read from the ``to`` record).
_RANGE_FORMAT = "%m%x1f%cI%x1f" + LOG_FORMAT
_CHUNK = 1 << 20
_EMAIL_RE = re.compile(rb"<([^<>\n]+)>")


@dataclass(frozen=True)
class ResolvedRange:
    """A checked range: ``from_sha`` is None when the range starts at the root commit.

    ``to_date`` (committer date of ``to``, ISO 8601) is filled in by :class:`CommitLog`,
    which reads it from the range's own output; :func:`resolve_range` leaves it empty.
    """

    from_ref: str | None
    to_ref: str
    from_sha: str | None
    to_sha: str
    to_date: str  # committer date of ``to``, ISO 8601 ("" until the log has run)
    to_version: Version | None  # ``to`` names a version tag


_GIT_ENV: dict[str, str] | None = None


def _env() -> dict[str, str]:
    global _GIT_ENV
    if _GIT_ENV is None:
        # English messages (the last stderr line becomes the error), never a prompt.
        _GIT_ENV = {**os.environ, "LC_ALL": "C", "LANGUAGE": "C", "GIT_TERMINAL_PROMPT": "0"}
    return _GIT_ENV


class Deadline:
    """Kills every git process watched under it once ``seconds`` have passed (the service
    bounds each generation so; the command line sets none). ``expired`` then says so."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._procs: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            if not self.expired:
                self._procs.append(proc)
                return
        _kill(proc)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            procs, self._procs = self._procs, []
        for proc in procs:
            _kill(proc)

    def cancel(self) -> None:
        self._timer.cancel()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.kill()


class GitRepo:
    """A repository path and the git processes run in it (killed at ``deadline``)."""

    __slots__ = ("deadline", "path")

    def __init__(self, path: str, deadline: Deadline | None = None) -> None:
        self.path = path
        self.deadline = deadline

    def popen(
        self, *args: str, stdin: bool = False, stdin_from: IO[bytes] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``git args`` through GitPython and return its streaming process.

        ``stdin``: a pipe to write to; ``stdin_from``: read another process's output (a
        pipeline of two git processes, ``git diff-tree -p | git patch-id``).
        """
        from git.cmd import Git  # imported when git first runs, not with the package
        from git.exc import GitCommandNotFound

        istream: BinaryIO | int | None = subprocess.PIPE if stdin else None
        if stdin_from is not None:
            istream = cast(BinaryIO, stdin_from)
        try:
            handle = Git(self.path).execute(
                ["git", *args], as_process=True, istream=istream, env=_env()
            )
        except (OSError, GitCommandNotFound) as exc:
            raise NotesError(f"cannot run git: {exc}") from None
        proc = handle.proc
        assert proc is not None
        # GitPython ends the process when its handle is collected: keep the two together.
        proc._gitpython_handle = handle  # type: ignore[attr-defined]
        if self.deadline is not None:
            self.deadline.watch(proc)
        return proc

    def run(self, *args: str, input: bytes | None = None) -> tuple[int, bytes, bytes]:
        proc = self.popen(*args, stdin=input is not None)
        out, err = proc.communicate(input)
        return proc.returncode, out, err

    def close(self) -> None:
        """Nothing to release; kept so callers can treat it like a handle."""


def _reader(proc: subprocess.Popen[bytes]) -> Callable[[int], bytes]:
    """Read what the pipe holds without waiting for a whole chunk (``read1`` when buffered)."""
    assert proc.stdout is not None
    read: Callable[[int], bytes] = getattr(proc.stdout, "read1", proc.stdout.read)
    return read


def open_repo(path: str | Path, deadline: Deadline | None = None) -> GitRepo:
    """The repository at ``path`` (a work tree or a bare repository), checked on disk; its
    git processes are killed at ``deadline``."""
    p = Path(path)
    if not p.exists():
        raise NotesError(f"not a git repository: {path} does not exist")
    if not ((p / ".git").exists() or ((p / "HEAD").is_file() and (p / "objects").is_dir())):
        raise NotesError(f"not a git repository: {path}")
    return GitRepo(str(p), deadline)


def _git_message(stderr: bytes, status: int | None) -> str:
    lines = [
        line.strip().removeprefix("fatal: ").removeprefix("error: ").strip()
        for line in stderr.decode("utf-8", "replace").splitlines()
        if line.strip()
    ]
    return lines[-1] if lines else f"git exited with status {status}"


def _check_ref(ref: str, option: str) -> None:
    if not ref or ref.startswith("-") or any(ch in ref for ch in "\x00\n\r"):
        raise NotesError(f"unknown ref for {option}: {ref!r}")


def _version_of_ref(ref: str, tag_prefix: str) -> Version | None:
    name = ref.removeprefix("refs/tags/")
    if tag_prefix:
        if not name.startswith(tag_prefix):
            return None
        name = name[len(tag_prefix) :]
    try:
        return parse_version(name)
    except InvalidVersion:
        return None


def _commit_shas(repo: GitRepo, refs: list[tuple[str, str]]) -> list[str]:
    """The commit sha of each ``(ref, option)``; NotesError naming the first bad one.

    One ``git cat-file --batch-check`` reads only object headers: each ref is asked for
    twice, as it is (its type) and peeled (``ref^{commit}``, for an annotated tag).
    """
    names = [n for ref, _ in refs for n in (ref, f"{ref}^{{commit}}")]
    status, out, err = repo.run(
        "cat-file",
        "--batch-check=%(objectname) %(objecttype)",
        input="".join(f"{n}\n" for n in names).encode("utf-8", "surrogateescape"),
    )
    if status != 0:
        raise NotesError(f"cannot resolve refs: {_git_message(err, status)}")
    answers: list[tuple[str, str] | None] = []
    for line in out.decode("utf-8", "replace").splitlines():
        sha, _, kind = line.rpartition(" ")
        answers.append((sha, kind) if kind not in ("missing", "ambiguous") else None)
    answers += [None] * (len(names) - len(answers))
    shas: list[str] = []
    for i, (ref, option) in enumerate(refs):
        answer = answers[2 * i]
        if answer is not None and answer[1] == "tag":
            answer = answers[2 * i + 1]
        if answer is None or answer[1] != "commit":
            raise NotesError(f"unknown ref for {option}: {ref!r} is not a commit in the repository")
        shas.append(answer[0])
    return shas


def previous_release_tag(
    repo: GitRepo,
    to_sha: str,
    to_version: Version | None,
    tag_prefix: str = "",
    to_ref: str | None = None,
) -> tuple[str, str] | None:
    """``(tag, commit sha)`` of the release before ``to``: what a store upgrades from.

    The highest version tag below ``to``'s version (compared parsed: ``3.10.0 > 3.9.0``),
    among the tags created no later than ``to`` when ``to`` names a tag (an annotated
    tag's date, else its commit's): on a straight line that is the nearest version tag
    reachable from ``to``, as before; with a hotfix (``1.0.1`` on a branch off ``1.0.0``)
    or release branches (each release tagged on its own branch) it is the release before
    in version order, reachable or not (``1.0.1`` for ``1.1.0``), so the range is git's
    ``1.0.1..1.1.0`` and what ``1.0.1`` already shipped is found by
    :mod:`release_notes.shipped`. The date bound keeps a later hotfix of an older line
    (``1.0.5`` tagged after ``1.1.0``) from becoming ``1.1.0``'s previous release. Tags on
    ``to``'s commit are skipped; without a version of ``to``, every version tag counts.
    """
    fmt = "%(refname:strip=2)%1f%(objectname)%1f%(*objectname)%1f%(creatordate:unix)"
    pattern = f"refs/tags/{tag_prefix}*" if tag_prefix else "refs/tags"
    status, out, err = repo.run("for-each-ref", f"--format={fmt}", pattern)
    if status != 0:
        raise NotesError(f"cannot list tags: {_git_message(err, status)}")
    tags: list[tuple[str, str, int]] = []
    to_tag = to_ref.removeprefix("refs/tags/") if to_ref else None
    to_date: int | None = None
    for line in out.decode("utf-8", "replace").splitlines():
        name, obj, peeled, stamp = [*line.split("\x1f"), "", "", ""][:4]
        sha = peeled or obj
        date = int(stamp) if stamp.isdigit() else 0
        if sha == to_sha:
            if name == to_tag:
                to_date = date
            continue
        tags.append((name, sha, date))
    best: tuple[Version, str, str] | None = None
    for name, sha, date in tags:
        if to_date is not None and date > to_date:
            continue
        version = _version_of_ref(name, tag_prefix)
        if version is None or (to_version is not None and not version < to_version):
            continue
        if best is None or version > best[0]:
            best = (version, name, sha)
    return (best[1], best[2]) if best else None


def resolve_range(
    repo: GitRepo,
    from_ref: str | None,
    to_ref: str,
    *,
    tag_prefix: str = "",
    from_root: bool = False,
    version: str | None = None,
) -> ResolvedRange:
    """Resolve a range. ``from_ref=None`` means the previous release tag.

    With ``from_root`` (or when no earlier version tag exists) the range starts at the
    root commit. The previous release is found by :func:`previous_release_tag`, with
    ``to``'s version read from its tag name, else from ``version`` (what the caller
    releases ``to`` as) when that parses. Raises :class:`NotesError` for unknown refs and
    for ``from`` and ``to`` naming the same commit. Whether ``from`` is an ancestor of
    ``to`` is read by :class:`CommitLog` from the range's boundary
    (:attr:`CommitLog.from_is_ancestor`).
    """
    _check_ref(to_ref, "--to")
    refs = [(to_ref, "--to")]
    if from_ref is not None:
        _check_ref(from_ref, "--from")
        refs.append((from_ref, "--from"))
    shas = _commit_shas(repo, refs)
    to_sha = shas[0]
    to_version = _version_of_ref(to_ref, tag_prefix)

    from_sha: str | None = None
    if from_ref is not None:
        from_sha = shas[1]
        if from_sha == to_sha:
            raise NotesError(f"empty range: {from_ref} and {to_ref} are the same commit")
    elif not from_root:
        bound = to_version
        if bound is None and version:
            try:
                bound = parse_version(version.removeprefix(tag_prefix))
            except InvalidVersion:
                bound = None
        previous = previous_release_tag(repo, to_sha, bound, tag_prefix, to_ref)
        if previous is not None:
            from_ref, from_sha = previous
    return ResolvedRange(from_ref, to_ref, from_sha, to_sha, "", to_version)


def open_range(
    repo: GitRepo,
    from_ref: str | None,
    to_ref: str,
    *,
    tag_prefix: str = "",
    from_root: bool = False,
    progress: Callable[[int], None] | None = None,
    version: str | None = None,
) -> tuple[ResolvedRange, CommitLog]:
    """Resolve the range and start its :class:`CommitLog`, side by side when possible.

    When the range's ends are known from the arguments (``from_ref`` given, or
    ``from_root``), ``git log`` starts on the checked ref names at once and the refs are
    resolved while it walks; a bad ref stops it. Otherwise (``from`` is the previous
    release tag) the range is resolved first.
    """
    if from_ref is None and not from_root:
        span = resolve_range(
            repo, from_ref, to_ref, tag_prefix=tag_prefix, from_root=from_root, version=version
        )
        return span, CommitLog(repo, span.from_sha, span.to_sha, progress=progress)
    _check_ref(to_ref, "--to")
    if from_ref is not None:
        _check_ref(from_ref, "--from")
    log = CommitLog(repo, from_ref, to_ref, progress=progress)
    try:
        span = resolve_range(repo, from_ref, to_ref, tag_prefix=tag_prefix, from_root=from_root)
    except BaseException:
        log.close()
        raise
    log.bind(span.from_sha, span.to_sha)
    return span, log


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.returncode is None:
        proc.kill()
    for stream in (proc.stdout, proc.stderr, proc.stdin):
        if stream is not None:
            stream.close()
    proc.wait()


def _finish(proc: subprocess.Popen[bytes], what: str) -> None:
    assert proc.stderr is not None
    err = proc.stderr.read()
    status = proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    if status != 0:
        raise NotesError(f"{what} failed: {_git_message(err, status)}")


def _set_pipe_size(proc: subprocess.Popen[bytes], size: int) -> None:
    """Linux: resize the pipe git writes to (bigger: git is not stalled by a slow reader)."""
    try:
        import fcntl

        assert proc.stdout is not None
        fcntl.fcntl(proc.stdout.fileno(), 1031, size)  # F_SETPIPE_SZ
    except (ImportError, OSError, ValueError, AttributeError, AssertionError):
        pass


class CommitLog:
    """The commits of ``from_sha..to_sha`` (newest first), parsed as git streams them.

    Iterate once. The range is git's ``from..to``: the commits reachable from ``to`` and
    not from ``from``, whether or not ``from`` is an ancestor of ``to``. With ``from_sha``,
    the log runs with ``--boundary``: afterwards :attr:`to_date` holds the committer date
    of ``to`` and :attr:`from_is_ancestor` says whether ``from`` was one of the excluded
    parents (which holds exactly when ``from`` is an ancestor of ``to`` and the range is
    not empty). ``from_sha`` and ``to_sha`` may be checked ref names instead,
    so that git starts walking before the refs are resolved: then :meth:`bind` gives the
    resolved shas before iterating (see :func:`open_range`).
    """

    def __init__(
        self,
        repo: GitRepo,
        from_sha: str | None,
        to_sha: str,
        *,
        progress: Callable[[int], None] | None = None,
        progress_every: int = 5_000,
    ) -> None:
        self.from_sha = from_sha
        self.to_sha = to_sha
        self.to_date = ""
        self.boundary: set[str] = set()
        self.progress = progress
        self.progress_every = progress_every
        if from_sha:
            args = ["log", "-z", "--boundary", f"--format={_RANGE_FORMAT}"]
            rev = [to_sha, f"^{from_sha}"]
        else:
            args = ["log", "-z", f"--format={LOG_FORMAT}"]
            rev = [to_sha]
        self._proc = repo.popen(*args, "--end-of-options", *rev, "--")
        _set_pipe_size(self._proc, 1 << 20)
        # The whole history has no boundary records to carry the date: ask for it alone.
        self._date_proc = (
            None
            if from_sha
            else repo.popen("log", "-1", "--format=%cI", "--end-of-options", to_sha, "--")
        )

    def bind(self, from_sha: str | None, to_sha: str) -> None:
        """The resolved shas of the refs the log was started with."""
        self.from_sha, self.to_sha = from_sha, to_sha

    def close(self) -> None:
        """Stop git (for a log that will not be read)."""
        _stop(self._proc)
        if self._date_proc is not None:
            _stop(self._date_proc)

    @property
    def from_is_ancestor(self) -> bool:
        """``from`` is an ancestor of ``to`` (read once the log has been iterated)."""
        return self.from_sha is None or self.from_sha in self.boundary

    def __iter__(self) -> Iterator[ParsedCommit]:
        proc = self._proc
        assert proc.stdout is not None
        read = _reader(proc)
        people: dict[tuple[str, str], Person] = {}
        shas: dict[str, str] = {}
        ranged = self.from_sha is not None
        tail = b""
        count = 0
        progress = self.progress
        every = self.progress_every
        try:
            while True:
                chunk = read(_CHUNK)
                if not chunk:
                    break
                data = tail + chunk if tail else chunk
                cut = data.rfind(b"\x00") + 1
                if cut == 0:
                    tail = data
                    continue
                tail = data[cut:]
                # One decode per chunk (records are whole, so no character is split), of a
                # view (the chunk is not copied); bytes that are not UTF-8 become U+FFFD in
                # their own message only.
                text = str(memoryview(data)[:cut], "utf-8", "replace")
                for record in text.split("\x00"):
                    if ranged:
                        commit = self._range_record(record, people, shas)
                    else:  # _parse_record, inline: this loop runs once per commit
                        fields = record.lstrip("\n").split("\x1f", 5)
                        commit = _commit_of(fields, people, shas) if len(fields) == 6 else None
                    if commit is not None:
                        count += 1
                        if progress is not None and count % every == 0:
                            progress(count)
                        yield commit
            if tail.strip():
                record = tail.decode("utf-8", "replace")
                commit = (
                    self._range_record(record, people, shas)
                    if ranged
                    else _parse_record(record, people, shas)
                )
                if commit is not None:
                    yield commit
        except GeneratorExit:
            self.close()
            raise
        _finish(proc, "git log")
        if self._date_proc is not None:
            assert self._date_proc.stdout is not None
            self.to_date = self._date_proc.stdout.read().decode("ascii", "replace").strip()
            _finish(self._date_proc, "git log")

    def _range_record(
        self, text: str, people: dict[tuple[str, str], Person], shas: dict[str, str]
    ) -> ParsedCommit | None:
        """Parse a range record (``_RANGE_FORMAT``); None for a boundary record.

        One split of the whole record: the message is copied once, as in
        :func:`_parse_record`, however long it is.
        """
        fields = text.lstrip("\n").split("\x1f", 7)
        if len(fields) < 8:
            return None
        if fields[0] == "-":
            self.boundary.add(fields[2])
            return None
        if not self.to_date and fields[2] == self.to_sha:
            self.to_date = fields[1]
        return _commit_of(fields[2:], people, shas)


def iter_commits(
    repo: GitRepo,
    from_sha: str | None,
    to_sha: str,
    *,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 5_000,
) -> Iterator[ParsedCommit]:
    """Stream the commits of ``from_sha..to_sha`` (newest first), parsed as they arrive."""
    return iter(CommitLog(repo, from_sha, to_sha, progress=progress, progress_every=progress_every))


def _parse_record(
    text: str, people: dict[tuple[str, str], Person], shas: dict[str, str]
) -> ParsedCommit | None:
    fields = text.lstrip("\n").split("\x1f", 5)
    if len(fields) < 6:
        return None
    return _commit_of(fields, people, shas)


def _commit_of(
    fields: list[str], people: dict[tuple[str, str], Person], shas: dict[str, str]
) -> ParsedCommit:
    """The commit of a record's ``LOG_FORMAT`` fields."""
    sha, parents, name, email, date, message = fields
    key = (name, email)
    person = people.get(key)
    if person is None:
        person = people[key] = Person(name, email)
    # History comes newest first, so a commit's sha was usually seen as a parent before:
    # reuse that string object (saves ~90 bytes per commit on a long history).
    sha = shas.pop(sha, sha)
    parent_shas = tuple(parents.split())
    for parent in parent_shas:
        shas[parent] = parent
    return parse_commit(sha, parent_shas, person, date, message)


# Emails (lower-cased bytes) seen by earlier scans, by (repository, ``before`` sha, mailmap
# stamp): the commits reachable from a sha never change, so a repeated range (the service
# regenerates the notes of a release after each edit) needs no second walk. The flag says
# the walk reached the root, so an email not in the set is a first-timer for sure.
_SEEN: dict[tuple[str, str, int], tuple[frozenset[bytes], bool]] = {}
_SEEN_MAX = 32


def _mailmap_stamp(path: str) -> int:
    """Authors' emails go through ``.mailmap``: an edit of it makes cached scans stale."""
    try:
        return os.stat(os.path.join(path, ".mailmap")).st_mtime_ns
    except OSError:
        return 0


class AuthorScan:
    """Which identity keys have a commit reachable from ``before_sha`` (first-timers).

    The keys are those of :func:`release_notes.people.identity_keys`: emails (as they are),
    names (``\x02`` + name) and GitHub logins of noreply addresses (``\x03`` + login), all
    lower-cased the way ``bytes.lower`` does. The ``git log`` over the older history
    writes each commit's author email, ``\x02`` and author name (both through
    ``.mailmap``) and its ``Co-authored-by`` lines. It starts when this object is created,
    so git starts up and walks while the range itself is being read; :meth:`first_timers`
    then reads only until every key asked about has been seen, so only a real first-timer
    costs a full walk (a person is found by any one of their keys, and
    :mod:`release_notes.notes` asks whether any key of a person was seen). The keys a scan
    saw are kept per process (:data:`_SEEN`): when an earlier scan from the same commit
    already saw every key asked about, no git runs at all.
    """

    def __init__(self, repo: GitRepo, before_sha: str | None) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._repo = repo
        self._key: tuple[str, str, int] | None = None
        self._cached: tuple[frozenset[bytes], bool] | None = None
        if before_sha is not None:
            self._key = (repo.path, before_sha, _mailmap_stamp(repo.path))
            self._cached = _SEEN.get(self._key)
            if self._cached is None:
                self._proc = self._start()
                # Until the range has been read, let git get only a page ahead: most scans
                # stop after a few hundred commits, and git should not burn a CPU the range
                # needs.
                _set_pipe_size(self._proc, 4096)

    def _start(self) -> subprocess.Popen[bytes]:
        assert self._key is not None
        return self._repo.popen(
            "log",
            "--format=%aE%n%x02%aN%n%(trailers:key=Co-authored-by,valueonly,separator=%x0a)",
            "--end-of-options",
            self._key[1],
            "--",
        )

    def cancel(self) -> None:
        if self._proc is not None:
            _stop(self._proc)
            self._proc = None

    def first_timers(
        self, keys: set[str], groups: Iterable[Collection[str]] | None = None
    ) -> set[str]:
        """The subset of ``keys`` not seen in any commit reachable from ``before``.

        ``groups`` partitions ``keys`` by person (each key alone when None): reading stops
        once every person has one key seen, so the keys returned for a person who was seen
        may include some that a longer walk would have found; every key of a person who was
        never seen is returned.
        """
        key, cached, proc = self._key, self._cached, self._proc
        self._proc = None
        if key is None:
            return set(keys)
        wanted = {k.encode("utf-8", "replace") for k in keys if k}
        if not wanted:
            if proc is not None:
                _stop(proc)
            return set()
        together: dict[bytes, tuple[bytes, ...]] = {}
        for group in groups or ():
            members = tuple(k.encode("utf-8", "replace") for k in group if k)
            for member in members:
                together[member] = members
        missing = set(wanted)  # every key not seen (the answer)
        known: set[bytes] = set()

        def seen(found: Iterable[bytes]) -> None:
            for hit in wanted.intersection(found):
                missing.discard(hit)
                for member in together.get(hit, (hit,)):
                    wanted.discard(member)

        if cached is not None:
            seen(cached[0])
            if not wanted or cached[1]:
                return {k.decode("utf-8", "replace") for k in missing}
            known.update(cached[0])
        if proc is None:
            proc = self._start()
        assert proc.stdout is not None
        read = _reader(proc)
        tail = b""
        count = 0
        while wanted:
            chunk = read(1 << 16)
            if not chunk:
                break
            count += len(chunk)
            if count > 65536 and count - len(chunk) <= 65536:  # a long walk: let git run ahead
                _set_pipe_size(proc, 1 << 20)
            data = (tail + chunk).lower()
            cut = data.rfind(b"\n") + 1
            data, tail = data[:cut], data[cut:]
            seen(_scan_keys(data, known, bool(wanted) and _wants_login(wanted)))
        complete = bool(wanted)
        if wanted:
            if tail:
                seen(_scan_keys(tail + b"\n", known, True))
            _finish(proc, "git log")
        else:
            _stop(proc)
        known.discard(b"")
        if len(_SEEN) >= _SEEN_MAX:
            del _SEEN[next(iter(_SEEN))]
        _SEEN[key] = (frozenset(known), complete)
        return {k.decode("utf-8", "replace") for k in missing}


def _wants_login(wanted: set[bytes]) -> bool:
    return any(k[:1] == b"\x03" for k in wanted)


_CO_AUTHOR_NAME_RE = re.compile(rb"^([^<\n\x02]*?)[ \t]*<", re.MULTILINE)
_LOGIN_RE = re.compile(rb"(?:^|[<\s])(?:\d+\+)?([^@+\s<>]+)@users\.noreply\.github\.com")


def _scan_keys(data: bytes, known: set[bytes], logins: bool) -> list[bytes]:
    """The keys in whole, lower-cased lines of the scan's output, added to ``known``: each
    line is a key (an email, or ``\x02`` and a name); a co-author line adds its email and
    name; a noreply address its login (looked for only when ``logins``)."""
    found = data.split(b"\n")
    if b"<" in data:
        found.extend(_EMAIL_RE.findall(data))
        found.extend(b"\x02" + b" ".join(n.split()) for n in _CO_AUTHOR_NAME_RE.findall(data))
    if logins and b"@users.noreply.github.com" in data:
        found.extend(b"\x03" + login for login in _LOGIN_RE.findall(data))
    known.update(found)
    return found


def first_time_authors(repo: GitRepo, before_sha: str | None, keys: set[str]) -> set[str]:
    """The subset of ``keys`` (lower-case emails, or any :func:`identity_keys`) not seen
    in any commit reachable from ``before_sha``."""
    if before_sha is None:
        return set(keys)
    return AuthorScan(repo, before_sha).first_timers(keys)


def map_co_authors(repo: GitRepo, persons: Iterable[Person]) -> dict[Person, Person]:
    """Co-authors through ``.mailmap`` (git maps authors itself, never trailers).

    One ``git check-mailmap --stdin`` for every distinct person, run only when a mailmap
    may exist (a ``.mailmap`` in the work tree; a bare repository reads ``HEAD:.mailmap``;
    ``mailmap.file`` / ``mailmap.blob`` in the config). Returns only the persons it changed.
    """
    unique = list(dict.fromkeys(persons))
    if not unique or not _may_have_mailmap(repo):
        return {}
    lines = "".join(f"{p.name} <{p.email}>\n" for p in unique).encode("utf-8", "replace")
    status, out, _ = repo.run("check-mailmap", "--stdin", input=lines)
    if status != 0:
        return {}  # an old git without --stdin, or an odd contact: leave them as written
    mapped: dict[Person, Person] = {}
    for person, line in zip(unique, out.decode("utf-8", "replace").splitlines(), strict=False):
        name, _, email = line.rpartition(" <")
        email = email.removesuffix(">")
        if (name, email) != (person.name, person.email):
            mapped[person] = Person(name or email, email)
    return mapped


def _may_have_mailmap(repo: GitRepo) -> bool:
    path = Path(repo.path)
    if (path / ".mailmap").exists() or not (path / ".git").exists():
        return True  # a work tree's file, or a bare repository (HEAD:.mailmap)
    config = path / ".git" / "config"
    try:
        return b"mailmap" in config.read_bytes()
    except OSError:
        return False
