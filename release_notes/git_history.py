"""Read a commit range from a git repository through GitPython.

The range is read with **one** ``git log`` invocation (fixed ``0x1f`` field separators,
NUL-terminated records) whose output is parsed as it streams; no per-commit object access,
which is 10–15× slower. Every failure is a :class:`NotesError` with a one-line message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git

from release_notes.commits import ParsedCommit, Person, parse_commit
from release_notes.errors import NotesError
from versioning import InvalidVersion, Version, parse_version

__all__ = [
    "LOG_FORMAT",
    "NotesError",
    "ResolvedRange",
    "first_time_authors",
    "iter_commits",
    "open_repo",
    "previous_release_tag",
    "resolve_range",
]

# sha, parents, author name and email (after .mailmap), author date, raw message.
LOG_FORMAT = "%H%x1f%P%x1f%aN%x1f%aE%x1f%aI%x1f%B"
_CHUNK = 1 << 20
_EMAIL_RE = re.compile(rb"<([^<>\n]+)>")


@dataclass(frozen=True)
class ResolvedRange:
    """A checked range: ``from_sha`` is None when the range starts at the root commit."""

    from_ref: str | None
    to_ref: str
    from_sha: str | None
    to_sha: str
    to_date: str  # committer date of ``to``, ISO 8601
    to_version: Version | None  # ``to`` names a version tag


def open_repo(path: str | Path) -> git.Repo:
    """Open the repository at ``path`` (a work tree or a bare repository)."""
    try:
        return git.Repo(path)
    except git.NoSuchPathError:
        raise NotesError(f"not a git repository: {path} does not exist") from None
    except (git.InvalidGitRepositoryError, OSError):
        raise NotesError(f"not a git repository: {path}") from None


def _git_message(exc: git.GitCommandError) -> str:
    stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else str(exc.stderr or "")
    lines = [
        line.strip().removeprefix("stderr: ").strip("'").strip()
        for line in stderr.splitlines()
        if line.strip()
    ]
    return lines[-1] if lines else f"git exited with status {exc.status}"


def _check_ref(ref: str, option: str) -> None:
    if not ref or ref.startswith("-") or any(ch in ref for ch in "\x00\n\r"):
        raise NotesError(f"unknown ref for {option}: {ref!r}")


def _resolve_one(repo: git.Repo, ref: str, option: str) -> str:
    try:
        out = repo.git.rev_parse("--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    except git.GitCommandError:
        raise NotesError(
            f"unknown ref for {option}: {ref!r} is not a commit in the repository"
        ) from None
    return str(out).strip()


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


def previous_release_tag(
    repo: git.Repo, to_sha: str, to_version: Version | None, tag_prefix: str = ""
) -> tuple[str, str] | None:
    """``(tag, commit sha)`` of the highest version tag reachable from ``to`` and below it.

    Tags on ``to`` itself are skipped; when ``to`` is a version tag, candidates must also
    be lower versions. Versions are compared parsed (``3.10.0 > 3.9.0``), never as strings.
    """
    fmt = "%(refname:strip=2)%1f%(objectname)%1f%(*objectname)"
    pattern = f"refs/tags/{tag_prefix}*" if tag_prefix else "refs/tags"
    try:
        out = repo.git.for_each_ref(f"--merged={to_sha}", f"--format={fmt}", pattern)
    except git.GitCommandError as exc:
        raise NotesError(f"cannot list tags: {_git_message(exc)}") from None
    best: tuple[Version, str, str] | None = None
    for line in str(out).splitlines():
        name, obj, peeled = [*line.split("\x1f"), "", ""][:3]
        sha = peeled or obj
        if sha == to_sha:
            continue
        version = _version_of_ref(name, tag_prefix)
        if version is None or (to_version is not None and not version < to_version):
            continue
        if best is None or version > best[0]:
            best = (version, name, sha)
    return (best[1], best[2]) if best else None


def resolve_range(
    repo: git.Repo,
    from_ref: str | None,
    to_ref: str,
    *,
    tag_prefix: str = "",
    from_root: bool = False,
) -> ResolvedRange:
    """Resolve and check a range. ``from_ref=None`` means the previous release tag.

    With ``from_root`` (or when no earlier version tag exists) the range starts at the
    root commit. Raises :class:`NotesError` for unknown refs, a ``from`` that is not an
    ancestor of ``to`` and an empty range.
    """
    _check_ref(to_ref, "--to")
    if from_ref is not None:
        _check_ref(from_ref, "--from")
    refs = [f"{to_ref}^{{commit}}"]
    if from_ref is not None:
        refs.append(f"{from_ref}^{{commit}}")
    try:
        out = repo.git.log(
            "--no-walk=unsorted", "--format=%H%x1f%cI", "--end-of-options", *refs, "--"
        )
    except git.GitCommandError:
        # Name the ref that failed (only on this error path: one more process per ref).
        _resolve_one(repo, to_ref, "--to")
        if from_ref is not None:
            _resolve_one(repo, from_ref, "--from")
        raise NotesError(f"cannot resolve --to {to_ref!r}") from None
    lines = str(out).splitlines()
    to_sha, to_date = lines[0].split("\x1f")
    to_version = _version_of_ref(to_ref, tag_prefix)

    from_sha: str | None = None
    if from_ref is not None:
        from_sha = lines[1].split("\x1f")[0] if len(lines) > 1 else to_sha
        if from_sha == to_sha:
            raise NotesError(f"empty range: {from_ref} and {to_ref} are the same commit")
        try:
            repo.git.merge_base("--is-ancestor", from_sha, to_sha)
        except git.GitCommandError as exc:
            if exc.status == 1:
                raise NotesError(f"--from {from_ref} is not an ancestor of --to {to_ref}") from None
            raise NotesError(
                f"cannot compare {from_ref} and {to_ref}: {_git_message(exc)}"
            ) from None
    elif not from_root:
        previous = previous_release_tag(repo, to_sha, to_version, tag_prefix)
        if previous is not None:
            from_ref, from_sha = previous
    return ResolvedRange(from_ref, to_ref, from_sha, to_sha, to_date, to_version)


def _start(repo: git.Repo, *args: str) -> Any:
    try:
        return repo.git.log(*args, as_process=True)
    except git.GitCommandError as exc:
        raise NotesError(f"git log failed: {_git_message(exc)}") from None


def _finish(proc: Any, what: str) -> None:
    try:
        proc.wait()
    except git.GitCommandError as exc:
        raise NotesError(f"{what} failed: {_git_message(exc)}") from None


def _stop(proc: Any) -> None:
    popen = proc.proc
    if popen is None:
        return
    popen.stdout.close()
    popen.terminate()
    popen.wait()
    if popen.stderr:
        popen.stderr.close()


def _grow_pipe(stream: Any) -> None:
    """Ask Linux for a 1 MiB pipe so git keeps writing while a chunk is being parsed."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ
    except (ImportError, OSError, ValueError, AttributeError):
        pass


def iter_commits(
    repo: git.Repo,
    from_sha: str | None,
    to_sha: str,
    *,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 5_000,
) -> Iterator[ParsedCommit]:
    """Stream the commits of ``from_sha..to_sha`` (newest first), parsed as they arrive."""
    rev = f"{from_sha}..{to_sha}" if from_sha else to_sha
    proc = _start(repo, "-z", f"--format={LOG_FORMAT}", "--end-of-options", rev, "--")
    stdout = proc.stdout
    _grow_pipe(stdout)
    people: dict[tuple[str, str], Person] = {}
    shas: dict[str, str] = {}
    tail = b""
    count = 0
    try:
        while True:
            chunk = stdout.read1(_CHUNK)
            if not chunk:
                break
            data = tail + chunk if tail else chunk
            cut = data.rfind(b"\x00") + 1
            if cut == 0:
                tail = data
                continue
            tail = data[cut:]
            # One decode per chunk (records are whole, so no character is split); bytes
            # that are not UTF-8 become U+FFFD in their own message only.
            for record in data[:cut].decode("utf-8", "replace").split("\x00"):
                commit = _parse_record(record, people, shas)
                if commit is not None:
                    count += 1
                    if progress is not None and count % progress_every == 0:
                        progress(count)
                    yield commit
        if tail.strip():
            commit = _parse_record(tail.decode("utf-8", "replace"), people, shas)
            if commit is not None:
                yield commit
    except GeneratorExit:
        _stop(proc)
        raise
    _finish(proc, "git log")


def _parse_record(
    text: str, people: dict[tuple[str, str], Person], shas: dict[str, str]
) -> ParsedCommit | None:
    fields = text.lstrip("\n").split("\x1f", 5)
    if len(fields) < 6:
        return None
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


def first_time_authors(repo: git.Repo, before_sha: str | None, emails: set[str]) -> set[str]:
    """The subset of ``emails`` (lower-case) with no commit reachable from ``before_sha``.

    One ``git log`` over the older history that stops as soon as every email has been
    seen as an author or ``Co-authored-by`` trailer, so only a real first-timer costs a
    full walk.
    """
    if before_sha is None:
        return set(emails)
    wanted = {e.encode("utf-8", "replace") for e in emails if e}
    if not wanted:
        return set()
    proc = _start(
        repo,
        "--format=%aE%n%(trailers:key=Co-authored-by,valueonly,separator=%x0a)",
        "--end-of-options",
        before_sha,
        "--",
    )
    stdout = proc.stdout
    tail = b""
    while wanted:
        chunk = stdout.read1(1 << 16)
        if not chunk:
            break
        data = (tail + chunk).lower()
        cut = data.rfind(b"\n") + 1
        data, tail = data[:cut], data[cut:]
        wanted.difference_update(data.split(b"\n"))
        if b"<" in data:
            wanted.difference_update(_EMAIL_RE.findall(data))
    if wanted:
        if tail:
            wanted.discard(tail.strip())
        _finish(proc, "git log")
    else:
        _stop(proc)
    return {e.decode("utf-8", "replace") for e in wanted}
