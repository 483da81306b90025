"""Release notes for a range of a repository: git history → parse → group → render.

The entry points the service and the CLI call. Errors are :class:`NotesError` (one line).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from release_notes.commits import ParsedCommit, Person
from release_notes.config import NotesConfig, load_config
from release_notes.errors import NotesError
from release_notes.git_history import (
    AuthorScan,
    Deadline,
    GitRepo,
    map_co_authors,
    open_range,
    open_repo,
)
from release_notes.notes import ReleaseNotes, build_release_notes
from release_notes.people import People
from release_notes.shipped import find_shipped

__all__ = ["FORMATS", "generate_for_range", "generate_notes", "no_gc", "render_notes"]

FORMATS = ("markdown", "json")


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many acyclic objects.

    Parsing a long history allocates hundreds of thousands of small objects, and each
    allocation burst triggers full collections that find nothing (parsed commits hold no
    cycles): on 200,000 commits this cut wall time by about a third. Nested uses keep it
    off until the outermost ends. A caller that keeps the notes after this (the service:
    ``generate_for_range`` then ``render_notes`` and ``to_json_dict``) should hold one
    ``no_gc()`` around all of it: the first collection after it ends scans every object
    still alive.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def generate_for_range(
    repo_path: str | Path,
    from_ref: str | None,
    to_ref: str,
    *,
    version: str | None = None,
    date: str | None = None,
    config: NotesConfig | None = None,
    from_root: bool = False,
    progress: Callable[[int], None] | None = None,
    timeout: float | None = None,
) -> ReleaseNotes:
    """The structured notes for ``from_ref..to_ref`` of the repository at ``repo_path``.

    ``from_ref=None`` uses the previous release tag (the highest version tag below
    ``to_ref``'s version, compared as parsed versions, created no later than ``to_ref``:
    see :func:`release_notes.git_history.previous_release_tag`), or the whole history when
    there is none or ``from_root`` is set. ``from_ref`` need not be an ancestor of
    ``to_ref``: the range is git's ``from..to``, and its commits whose change already
    shipped in ``from`` (cherry-picks, the same patch) are listed apart
    (:mod:`release_notes.shipped`). ``version`` defaults to the version tag ``to_ref`` names, else
    ``to_ref`` itself; ``date`` (``YYYY-MM-DD``) to the committer date of ``to_ref``.
    ``progress(n)`` is called every few thousand commits. With ``timeout`` (seconds), git
    processes still running then are killed and the generation fails. Raises
    :class:`NotesError`.
    """
    deadline = Deadline(timeout) if timeout is not None else None
    try:
        with no_gc():
            notes = _generate_for_range(
                repo_path, from_ref, to_ref, version, date, config, from_root, progress, deadline
            )
    except Exception:
        if deadline is not None and deadline.expired:
            raise NotesError(f"git did not finish within {timeout:g} s") from None
        raise
    finally:
        if deadline is not None:
            deadline.cancel()
    if deadline is not None and deadline.expired:
        raise NotesError(f"git did not finish within {timeout:g} s")
    return notes


def _generate_for_range(
    repo_path: str | Path,
    from_ref: str | None,
    to_ref: str,
    version: str | None,
    date: str | None,
    config: NotesConfig | None,
    from_root: bool,
    progress: Callable[[int], None] | None,
    deadline: Deadline | None = None,
) -> ReleaseNotes:
    config = config or NotesConfig()
    repo = open_repo(repo_path, deadline)
    # The git processes run side by side: the range's log (started before its refs are
    # resolved when it can be), and the walk of the older history that decides who is a
    # first-time contributor.
    span, log = open_range(
        repo,
        from_ref,
        to_ref,
        tag_prefix=config.tag_prefix,
        from_root=from_root,
        progress=progress,
        version=version,
    )
    try:
        authors = AuthorScan(repo, span.from_sha)
    except BaseException:
        log.close()
        raise
    try:
        commits = list(log)
        if not commits:
            raise NotesError(
                f"empty range: no commits between {span.from_ref} and {to_ref}"
                f" ({to_ref} is already in {span.from_ref})"
            )
        _map_co_authors(repo, commits)
        shipped: dict[str, tuple[str, str]] = {}
        if span.from_sha is not None and (
            not log.from_is_ancestor or any(c.cherry_picked_from for c in commits)
        ):
            shipped = find_shipped(
                repo,
                span.from_sha,
                span.to_sha,
                commits,
                from_is_ancestor=log.from_is_ancestor,
            )
        if span.from_sha is None:
            # From the root commit everyone is a first-time contributor: no keys needed.
            known_authors: set[str] = set()
        else:
            groups = _contributor_keys(commits, config, shipped)
            keys = {key for group in groups for key in group}
            known_authors = keys - authors.first_timers(keys, groups)
    finally:
        authors.cancel()
    span = replace(span, to_date=log.to_date)
    notes = build_release_notes(
        commits,
        version=version or (span.to_version.original if span.to_version else to_ref),
        date=date or span.to_date[:10],
        config=config,
        known_authors=known_authors,
        shipped=shipped,
        shipped_in=span.from_ref,
    )
    notes.from_ref, notes.to_ref = span.from_ref, span.to_ref
    notes.from_sha, notes.to_sha = span.from_sha, span.to_sha
    return notes


def _map_co_authors(repo: GitRepo, commits: list[ParsedCommit]) -> None:
    """Co-authors through ``.mailmap``, as git maps the authors (one process when any)."""
    with_co = [c for c in commits if c.co_authors]
    if not with_co:
        return
    mapped = map_co_authors(repo, (p for c in with_co for p in c.co_authors))
    if mapped:
        for c in with_co:
            c.co_authors = tuple(mapped.get(p, p) for p in c.co_authors)


def _contributor_keys(
    commits: list[ParsedCommit], config: NotesConfig, shipped: dict[str, tuple[str, str]]
) -> list[set[str]]:
    """The identity keys of each person the contributors list counts (not bots), joined
    as :class:`release_notes.people.People` joins them: the history scan looks for one
    key of each."""
    persons: dict[int, Person] = {}
    co_authors: list[Person] = []
    for c in commits:
        if c.is_merge or c.sha in shipped:
            continue
        persons.setdefault(id(c.author), c.author)
        if c.co_authors:
            co_authors.extend(c.co_authors)
    people = People()
    humans = [
        p
        for p in dict.fromkeys([*persons.values(), *co_authors])
        if not config.is_bot(p.name, p.email)
    ]
    for person in humans:
        people.add(person)
    groups: dict[str, set[str]] = {}
    for person in humans:
        cluster = people.cluster(person)
        if cluster not in groups:
            groups[cluster] = people.keys_of(person)
    return list(groups.values())


def render_notes(
    notes: ReleaseNotes, fmt: str = "markdown", config: NotesConfig | None = None
) -> str:
    """``notes`` as Markdown (the config's template, else the packaged one) or JSON."""
    with no_gc():
        return _render_notes(notes, fmt, config)


def _render_notes(notes: ReleaseNotes, fmt: str, config: NotesConfig | None) -> str:
    if fmt == "json":
        from release_notes.render import render_json

        return render_json(notes)
    if fmt == "markdown":
        from release_notes.render import render_markdown

        return render_markdown(notes, config.template if config else None)
    raise NotesError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def generate_notes(
    repo_path: str | Path,
    from_ref: str | None,
    to_ref: str,
    *,
    config: NotesConfig | str | Path | None = None,
    fmt: str = "markdown",
    version: str | None = None,
    date: str | None = None,
    from_root: bool = False,
) -> str:
    """The rendered notes (``fmt`` is ``markdown`` or ``json``); ``config`` may be a path."""
    if fmt not in FORMATS:
        raise NotesError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if config is not None and not isinstance(config, NotesConfig):
        config = load_config(config)
    # One pause of the collector for the whole job: re-enabled between generating and
    # rendering, it would scan every object of the notes (~0.2 s on 200,000 commits) for
    # nothing. The notes are freed before it is back on, so it never sees them.
    with no_gc():
        notes = generate_for_range(
            repo_path,
            from_ref,
            to_ref,
            version=version,
            date=date,
            config=config,
            from_root=from_root,
        )
        text = render_notes(notes, fmt, config)
        del notes
    return text
