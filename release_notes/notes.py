"""Group parsed commits into :class:`ReleaseNotes`.

Pure module: no git, no I/O. :func:`build_release_notes` puts every input commit exactly
once either among the shown items or among the filtered ones, with the reason, so that
nothing in a range silently disappears. Filter reasons (:data:`FILTER_REASONS`):

``reverted``
    a ``Revert "..."`` commit and the commit it reverts, both in the range. Pairs are
    matched newest first, so a revert of a revert brings the original change back.
``merge``
    a merge commit whose merged commits are listed themselves (their PR number is taken
    from the merge when they have none), or a merge that brings nothing new into the range.
``bot``
    a commit by a bot author when the config's ``bot_policy`` is ``filter`` (with the
    default ``dependencies`` policy bot commits are shown under Dependencies instead).
``release-note-none``
    ``Release-Note: none``.
``skip-changelog``
    ``[skip changelog]`` (or ``[changelog skip]``, ``[no changelog]``, ``[skip release notes]``).

A breaking change is never hidden by ``Release-Note: none`` or ``[skip changelog]``: support
staff must learn about it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter, contains

from release_notes.commits import KIND_ORDER, KIND_TITLES, ParsedCommit, Person
from release_notes.config import NotesConfig

__all__ = [
    "FILTER_REASONS",
    "AreaGroup",
    "Contributor",
    "FilteredCommit",
    "NoteItem",
    "ReleaseNotes",
    "Section",
    "build_release_notes",
]

FILTER_REASONS: tuple[str, ...] = (
    "reverted",
    "merge",
    "bot",
    "release-note-none",
    "skip-changelog",
)


@dataclass(slots=True)
class NoteItem:
    """A shown commit with what the notes add to it (area, section, links, authors)."""

    commit: ParsedCommit
    kind: str
    area: str
    pr_number: int | None
    pr_url: str | None
    commit_url: str | None
    bot: bool = False

    @property
    def authors(self) -> tuple[Person, ...]:
        """The author, then the co-authors."""
        return (self.commit.author, *self.commit.co_authors)


@dataclass(slots=True)
class FilteredCommit:
    """A commit of the range that the notes do not show, and why."""

    commit: ParsedCommit
    reason: str  # one of FILTER_REASONS
    detail: str


@dataclass(slots=True)
class AreaGroup:
    area: str
    items: list[NoteItem] = field(default_factory=list)


@dataclass(slots=True)
class Section:
    kind: str
    title: str
    groups: list[AreaGroup]

    @property
    def count(self) -> int:
        return sum(len(g.items) for g in self.groups)


@dataclass(slots=True)
class Contributor:
    name: str
    email: str
    commits: int
    first_time: bool


@dataclass(slots=True)
class ReleaseNotes:
    """The notes of one release: what :mod:`release_notes.render` turns into Markdown/JSON."""

    version: str
    date: str
    commit_count: int
    pr_numbers: tuple[int, ...]
    breaking: list[NoteItem]
    for_stores: list[AreaGroup]
    sections: list[Section]
    items: list[NoteItem]  # every shown item once, in history order (newest first)
    filtered: list[FilteredCommit]
    contributors: list[Contributor]
    from_ref: str | None = None
    to_ref: str | None = None
    from_sha: str | None = None
    to_sha: str | None = None

    @property
    def pr_count(self) -> int:
        return len(self.pr_numbers)


def _resolve_revert_target(target: str, by_sha: dict[str, ParsedCommit]) -> str | None:
    if target in by_sha:
        return target
    if len(target) < 40:  # abbreviated sha: rare, so a linear scan is fine
        for sha in by_sha:
            if sha.startswith(target):
                return sha
    return None


_PARENTS = attrgetter("parents")


def _tip(commits: list[ParsedCommit]) -> ParsedCommit | None:
    # From ``git log`` the first commit is the tip: check that without a set of every
    # parent sha (tens of MiB on a long history), and fall back to the set otherwise.
    if commits:
        first = commits[0].sha
        # ``any(first in c.parents for c in commits)``, iterated in C.
        if not any(map(contains, map(_PARENTS, commits), repeat(first))):
            return commits[0]
    referenced: set[str] = set()
    for c in commits:
        referenced.update(c.parents)
    for c in commits:
        if c.sha not in referenced:
            return c
    return None


def _group_by_area(items: Iterable[NoteItem], default_area: str) -> list[AreaGroup]:
    groups: dict[str, AreaGroup] = {}
    for item in items:
        group = groups.get(item.area)
        if group is None:
            group = groups[item.area] = AreaGroup(item.area)
        group.items.append(item)
    return _sorted_groups(groups, default_area)


def _sorted_groups(groups: dict[str, AreaGroup], default_area: str) -> list[AreaGroup]:
    # Named areas alphabetically, the catch-all area last.
    return sorted(groups.values(), key=lambda g: (g.area == default_area, g.area.lower()))


def build_release_notes(
    commits: Iterable[ParsedCommit],
    *,
    version: str,
    date: str,
    config: NotesConfig | None = None,
    known_authors: Collection[str] | None = None,
) -> ReleaseNotes:
    """Group ``commits`` (history order, newest first) into release notes.

    ``known_authors`` holds the lower-cased emails of people with commits before the
    range; contributors not in it are marked first-time. ``None`` marks nobody.
    """
    config = config or NotesConfig()
    commit_list = commits if isinstance(commits, list) else list(commits)
    by_sha = {c.sha: c for c in commit_list}
    reasons: dict[str, tuple[str, str]] = {}
    pr_of: dict[str, int] = {}

    # Reverts: newest first, each commit in at most one pair.
    for c in commit_list:
        if c.reverts is None or c.sha in reasons:
            continue
        target = _resolve_revert_target(c.reverts, by_sha)
        if target is None or target in reasons or target == c.sha:
            continue
        reasons[c.sha] = ("reverted", f"reverts {target[:7]}, which is in the range")
        reasons[target] = ("reverted", f"reverted by {c.sha[:7]} in the range")

    # Merges: the commits a merge brings in are walked along first parents, off the mainline.
    if any(c.is_merge for c in commit_list):
        mainline: set[str] = set()
        tip = _tip(commit_list)
        cursor = tip
        while cursor is not None and cursor.sha not in mainline:
            mainline.add(cursor.sha)
            cursor = by_sha.get(cursor.parents[0]) if cursor.parents else None
        claimed: set[str] = set()
        for c in commit_list:
            if not c.is_merge:
                continue
            brought = 0
            merged = c.parents[1:]
            for parent in merged:
                node = by_sha.get(parent)
                while node is not None and node.sha not in mainline and node.sha not in claimed:
                    claimed.add(node.sha)
                    brought += 1
                    if c.pr_number is not None and node.pr_number is None:
                        pr_of[node.sha] = c.pr_number
                    node = by_sha.get(node.parents[0]) if node.parents else None
            merged_in_range = merged[0] in by_sha or any(p in by_sha for p in merged[1:])
            if c.sha in reasons:
                continue
            if merged_in_range:
                what = f"merge commit of PR #{c.pr_number}" if c.pr_number else "merge commit"
                count = f"its {brought} commits" if brought else "its commits"
                reasons[c.sha] = ("merge", f"{what}; {count} are listed")
            elif c.merge_branch is None or c.subject == c.header:
                reasons[c.sha] = ("merge", "merge commit that brings no commits into the range")
            # else: a PR merge whose commits lie outside the range: shown under its PR title.

    items: list[NoteItem] = []
    # Sections (kind → area → items), breaking and store-facing items, filled as the items
    # are made, in history order.
    by_kind: dict[str, dict[str, AreaGroup]] = {kind: {} for kind in KIND_ORDER}
    breaking: list[NoteItem] = []
    store_items: list[NoteItem] = []
    filtered: list[FilteredCommit] = []
    pr_numbers: set[int] = set()
    counts: dict[str, int] = {}
    names: dict[str, Person] = {}
    area_cache: dict[str | None, str] = {}
    filter_bots = config.bot_policy == "filter"
    pr_url = config.pr_url
    commit_url = config.commit_url
    # Keyed by object id: the stream shares one Person per author, and every Person stays
    # alive in ``commit_list`` while this runs. Value: (is bot, contributor key).
    person_info: dict[int, tuple[bool, str]] = {}

    def info_of(person: Person) -> tuple[bool, str]:
        info = person_info.get(id(person))
        if info is None:
            key = person.email.lower() or person.name
            info = person_info[id(person)] = (config.is_bot(person.name, person.email), key)
            names.setdefault(key, person)
        return info

    get_info = person_info.get
    get_reason = reasons.get
    for c in commit_list:
        author = c.author
        info = get_info(id(author))
        bot, key = info if info is not None else info_of(author)
        reason = get_reason(c.sha) if reasons else None
        if reason is None:
            if bot and filter_bots:
                reason = ("bot", f"commit by bot {c.author.name or c.author.email}")
            elif c.release_note_none and not c.breaking:
                reason = ("release-note-none", "Release-Note: none")
            elif c.skip_changelog and not c.breaking:
                reason = ("skip-changelog", "[skip changelog]")
        pr_number = c.pr_number
        if pr_number is None and pr_of:
            pr_number = pr_of.get(c.sha)
        if pr_number is not None:
            pr_numbers.add(pr_number)

        if not c.is_merge:
            if not bot:
                counts[key] = counts.get(key, 0) + 1
            for person in c.co_authors:
                co_bot, co_key = info_of(person)
                if not co_bot and co_key != key:
                    counts[co_key] = counts.get(co_key, 0) + 1

        if reason is not None:
            filtered.append(FilteredCommit(c, reason[0], reason[1]))
            continue
        area = area_cache.get(c.scope)
        if area is None:
            area = area_cache[c.scope] = config.area_for(c.scope)
        kind = "deps" if bot else c.kind
        item = NoteItem(
            c,
            kind,
            area,
            pr_number,
            pr_url.format(number=pr_number) if pr_url and pr_number is not None else None,
            commit_url.format(sha=c.sha) if commit_url else None,
            bot,
        )
        items.append(item)
        groups = by_kind[kind]
        group = groups.get(area)
        if group is None:
            group = groups[area] = AreaGroup(area)
        group.items.append(item)
        if c.breaking:
            breaking.append(item)
        if c.release_note:
            store_items.append(item)

    people = [
        Contributor(
            names[key].name,
            names[key].email,
            count,
            known_authors is not None and key not in known_authors,
        )
        for key, count in counts.items()
    ]

    sections = [
        Section(kind, KIND_TITLES[kind], _sorted_groups(by_kind[kind], config.default_area))
        for kind in KIND_ORDER
        if by_kind[kind]
    ]
    for_stores = _group_by_area(store_items, config.default_area)
    contributors = sorted(people, key=lambda p: (-p.commits, p.name.lower(), p.email))

    return ReleaseNotes(
        version=version,
        date=date,
        commit_count=len(commit_list),
        pr_numbers=tuple(sorted(pr_numbers)),
        breaking=breaking,
        for_stores=for_stores,
        sections=sections,
        items=items,
        filtered=filtered,
        contributors=contributors,
    )
