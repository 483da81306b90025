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
``already-shipped``
    a commit whose change already shipped in the release the range starts from: the same
    patch, or a cherry-pick of (or picked into) a commit that release holds, found by
    :mod:`release_notes.shipped`. Listed apart (:attr:`ReleaseNotes.already_shipped`:
    "Already in 1.0.1"), never as new.
``bot``
    a commit by a bot author when the config's ``bot_policy`` is ``filter`` (with the
    default ``dependencies`` policy a bot's dependency update is shown with the other
    dependency updates, and its other commits under their own type).
``release-note-none``
    ``Release-Note: none``.
``skip-changelog``
    ``[skip changelog]`` (or ``[changelog skip]``, ``[no changelog]``, ``[skip release notes]``).

A breaking change is never hidden by ``Release-Note: none`` or ``[skip changelog]``: support
staff must learn about it.

Dependency updates (:func:`dependency_update`) are the ``deps`` section, one row each
(:attr:`ReleaseNotes.dependencies`, :attr:`NoteItem.dependency`). People are joined across
their emails, names and GitHub logins (:mod:`release_notes.people`): each item names a
person once, and the contributors list each person once.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter, contains

from release_notes.commits import KIND_ORDER, KIND_TITLES, ParsedCommit, Person
from release_notes.config import NotesConfig
from release_notes.people import People

__all__ = [
    "FILTER_REASONS",
    "AreaGroup",
    "Contributor",
    "DependencyUpdate",
    "FilteredCommit",
    "NoteItem",
    "ReleaseNotes",
    "Section",
    "ShippedItem",
    "build_release_notes",
    "dependency_update",
]

FILTER_REASONS: tuple[str, ...] = (
    "reverted",
    "merge",
    "already-shipped",
    "bot",
    "release-note-none",
    "skip-changelog",
)


# What reads as a dependency update. A bot's subject (dependabot, renovate) starting with
# one of these verbs is one, unless it bumps the project's own version; anyone's subject
# naming a dependency or going "from A to B" is one. (Matched after the conventional prefix.)
_BOT_BUMP_RE = re.compile(
    r"(?:bump|upgrade|pin)(?:s|ed)?\b(?!(?:\s+the)?\s+(?:version|to)\b)"
    r"|update[sd]?\b.*(?:\bto\s+v?\d|dependenc|\block\s*files?\b|\bfrom\s+\S+\s+to\s)"
    r"|lock\s*file\s+maintenance",
    re.IGNORECASE,
)
_HUMAN_BUMP_RE = re.compile(
    r"(?:bump|update|upgrade)(?:s|d|ed)?\s+(?:dependency\s+\S+|\S.*\sfrom\s+\S+\s+to\s+\S+)",
    re.IGNORECASE,
)
# Types under which a commit may be a dependency update (a bot's ``docs:`` is documentation).
_BUMP_TYPES = frozenset({None, "chore", "build", "ci", "deps", "dep", "fix"})
_DEP_PARTS_RE = re.compile(
    r"(?:bump|update|upgrade|pin)(?:s|d|ed)?\s+(?:dependency\s+)?(?P<name>.+?)"
    r"(?:\s+from\s+(?P<old>\S+))?\s+to\s+(?P<new>\S+?)(?P<where>\s+(?:in|for)\s+.+)?",
    re.IGNORECASE,
)
_DEP_VERB_RE = re.compile(r"(?:bump|update|upgrade|pin)(?:s|d|ed)?\s+(?:dependency\s+)?", re.I)


@dataclass(frozen=True, slots=True)
class DependencyUpdate:
    """One row of the dependency table: what changed, from which version to which."""

    name: str  # ``mislav/bump-homebrew-formula-action``, ``typescript in /website``
    old: str | None  # ``3.6``; None when neither the subject nor the excerpt says
    new: str | None  # ``4.1``


# The first two letters of every subject the patterns above can match: a cheap test first.
_BUMP_STARTS = frozenset(
    a + b
    for w in ("bu", "up", "pi", "lo")
    for a in (w[0], w[0].upper())
    for b in (w[1], w[1].upper())
)


def is_dependency_update(commit: ParsedCommit, bot: bool) -> bool:
    """Whether ``commit`` is a dependency update (its own ``deps`` section)."""
    if commit.kind == "deps":
        return True
    subject = commit.subject
    if subject[:2] not in _BUMP_STARTS or commit.type not in _BUMP_TYPES:
        return False
    if bot:
        return _BOT_BUMP_RE.match(subject) is not None
    return _HUMAN_BUMP_RE.match(subject) is not None


# What a bot's excerpt says when its subject does not: dependabot's ``Bumps [x](url) from
# A to B.`` (A and B may be commit shas, GitHub Actions pinned by sha: shortened), or, for a
# group (``bump the patch group with 2 updates``), ``Bumps the patch group with 2 updates:
# [a](url) and [b](url).``, whose names are added to the row's.
_EXCERPT_FROM_TO_RE = re.compile(r"Bumps .*?\sfrom\s+`?([^\s`]+?)`?\s+to\s+`?([^\s`]+?)`?\.?")
_EXCERPT_GROUP_RE = re.compile(r"Bumps the .*?(?:updates?|directory): (.+?)\.?")
_MD_LINK_RE = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_FULL_SHA_RE = re.compile(r"[0-9a-f]{40}")


def _version(text: str) -> str:
    return f"`{text[:7]}`" if _FULL_SHA_RE.fullmatch(text) else text


def dependency_update(subject: str, excerpt: str | None = None) -> DependencyUpdate:
    """The table row of a dependency update: its subject (``bump x from 1.0 to 1.1 in
    /web``), completed from its excerpt (dependabot's ``Bumps ...`` line) when the subject
    names no versions."""
    parts = _DEP_PARTS_RE.fullmatch(subject.strip())
    if parts is not None and " to " in parts.group("name"):
        parts = None  # several updates in one (``vitepress to 1.0 and theme to 5.0``)
    if parts is not None:
        name = parts.group("name")
        if parts.group("where"):
            name += parts.group("where")
        return DependencyUpdate(name, parts.group("old"), parts.group("new"))
    verb = _DEP_VERB_RE.match(subject)
    name = subject[verb.end() :] if verb else subject
    if excerpt is None or not excerpt.startswith("Bumps "):
        return DependencyUpdate(name, None, None)
    found = _EXCERPT_FROM_TO_RE.fullmatch(excerpt)
    if found is not None:
        return DependencyUpdate(name, _version(found.group(1)), _version(found.group(2)))
    group = _EXCERPT_GROUP_RE.fullmatch(excerpt)
    if group is not None and name.startswith("the "):  # a group its subject does not name
        names = _MD_LINK_RE.sub(r"\1", group.group(1)).replace(" and ", ", ")
        return DependencyUpdate(f"{name}: {names}", None, None)
    return DependencyUpdate(name, None, None)


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
    dependency: DependencyUpdate | None = None  # set for the ``deps`` section
    people: People | None = field(default=None, repr=False, compare=False)

    @property
    def authors(self) -> tuple[Person, ...]:
        """The author, then the co-authors: each person once, by the name the notes use."""
        c = self.commit
        if self.people is None:
            return (c.author, *c.co_authors)
        return self.people.dedupe((c.author, *c.co_authors))


@dataclass(slots=True)
class FilteredCommit:
    """A commit of the range that the notes do not show, and why."""

    commit: ParsedCommit
    reason: str  # one of FILTER_REASONS
    detail: str
    same_as: str | None = None  # ``already-shipped``: the commit ``from`` holds


@dataclass(slots=True)
class ShippedItem:
    """A commit whose change already shipped in the release the range starts from."""

    item: NoteItem
    same_as: str  # the commit of that release with the same change
    how: str  # ``cherry-pick`` (a ``-x`` line) or ``same patch`` (``git patch-id``)


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
    # the ``deps`` section's items, in history order (one table row each)
    dependencies: list[NoteItem] = field(default_factory=list)
    # commits already in the release the range starts from (also in ``filtered``)
    already_shipped: list[ShippedItem] = field(default_factory=list)
    shipped_in: str | None = None  # that release, as the notes name it
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
    shipped: Mapping[str, tuple[str, str]] | None = None,
    shipped_in: str | None = None,
) -> ReleaseNotes:
    """Group ``commits`` (history order, newest first) into release notes.

    ``known_authors`` holds the identity keys (:func:`release_notes.people.identity_keys`;
    lower-cased emails are keys) seen before the range; a contributor none of whose keys is
    in it is marked first-time. ``None`` marks nobody. ``shipped`` maps the sha of a commit
    whose change already shipped in ``shipped_in`` (the release the range starts from) to
    ``(sha of that release's commit, how)``.
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

    shipped = shipped or {}
    # Merges: the commits a merge brings in are walked along first parents, off the mainline.
    # A merge picked into ``shipped_in`` (``cherry-pick -x -m 1``) shipped what it brings.
    shipped_by_merge: dict[str, tuple[str, str]] = {}
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
            picked = shipped.get(c.sha)
            for parent in merged:
                node = by_sha.get(parent)
                while node is not None and node.sha not in mainline and node.sha not in claimed:
                    claimed.add(node.sha)
                    brought += 1
                    if picked is not None:
                        shipped_by_merge[node.sha] = picked
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

    if shipped_by_merge:
        shipped = {**shipped_by_merge, **shipped}
    label = shipped_in or "the previous release"
    for sha, (same_as, how) in shipped.items():
        if sha in by_sha and sha not in reasons:
            reasons[sha] = ("already-shipped", f"already in {label} as {same_as[:7]} ({how})")

    items: list[NoteItem] = []
    # Sections (kind → area → items), breaking and store-facing items, filled as the items
    # are made, in history order.
    by_kind: dict[str, dict[str, AreaGroup]] = {kind: {} for kind in KIND_ORDER}
    breaking: list[NoteItem] = []
    store_items: list[NoteItem] = []
    dependencies: list[NoteItem] = []
    already: list[ShippedItem] = []
    filtered: list[FilteredCommit] = []
    pr_numbers: set[int] = set()
    people = People()
    # Commits per author (by object id) for commits without co-authors; the people of each
    # commit with co-authors. Counted per person once the people are joined (below).
    authored: dict[int, int] = {}
    with_co_authors: list[tuple[Person, ...]] = []
    area_cache: dict[str | None, str] = {}
    filter_bots = config.bot_policy == "filter"
    pr_url = config.pr_url
    commit_url = config.commit_url
    # Keyed by object id: the stream shares one Person per author, and every Person stays
    # alive in ``commit_list`` while this runs. Value: is a bot. Every person met is kept
    # for :class:`People` (``met``), which joins them once the range has been read.
    is_bot: dict[int, bool] = {}
    met: list[Person] = []

    def bot_of(person: Person) -> bool:
        bot = is_bot.get(id(person))
        if bot is None:
            bot = is_bot[id(person)] = config.is_bot(person.name, person.email)
            met.append(person)
        return bot

    get_bot = is_bot.get
    get_reason = reasons.get
    get_authored = authored.get
    for c in commit_list:
        author = c.author
        author_id = id(author)
        bot = get_bot(author_id)
        if bot is None:
            bot = bot_of(author)
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

        if not c.is_merge and (reason is None or reason[0] != "already-shipped"):
            if c.co_authors:
                humans = [p for p in (author, *c.co_authors) if not bot_of(p)]
                if humans:
                    with_co_authors.append(tuple(humans))
            elif not bot:
                authored[author_id] = get_authored(author_id, 0) + 1

        if reason is not None and reason[0] != "already-shipped":
            filtered.append(FilteredCommit(c, reason[0], reason[1]))
            continue
        area = area_cache.get(c.scope)
        if area is None:
            area = area_cache[c.scope] = config.area_for(c.scope)
        kind = c.kind
        if (
            kind != "deps"
            and (
                bot
                # a person's update names a dependency or goes "from A to B" (cheap tests)
                or (c.type in _BUMP_TYPES and (" to " in c.header or "ependenc" in c.header))
            )
            and is_dependency_update(c, bot)
        ):
            kind = "deps"
        if c.co_authors:
            for person in c.co_authors:
                bot_of(person)
        item = NoteItem(
            c,
            kind,
            area,
            pr_number,
            pr_url.format(number=pr_number) if pr_url and pr_number is not None else None,
            commit_url.format(sha=c.sha) if commit_url else None,
            bot,
            dependency_update(c.subject, c.body) if kind == "deps" else None,
            people,
        )
        if reason is not None:  # already shipped: listed apart, not as new
            same_as, how = shipped[c.sha]
            filtered.append(FilteredCommit(c, reason[0], reason[1], same_as))
            already.append(ShippedItem(item, same_as, how))
            continue
        items.append(item)
        groups = by_kind[kind]
        group = groups.get(area)
        if group is None:
            group = groups[area] = AreaGroup(area)
        group.items.append(item)
        if kind == "deps":
            dependencies.append(item)
        if c.breaking:
            breaking.append(item)
        if c.release_note:
            store_items.append(item)

    authors_by_id = {id(person): person for person in met}
    for person in met:
        people.add(person, authored.get(id(person), 0))
    contributors = _contributors(people, authored, authors_by_id, with_co_authors, known_authors)
    sections = [
        Section(kind, KIND_TITLES[kind], _sorted_groups(by_kind[kind], config.default_area))
        for kind in KIND_ORDER
        if by_kind[kind]
    ]
    for_stores = _group_by_area(store_items, config.default_area)

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
        dependencies=dependencies,
        already_shipped=already,
        shipped_in=shipped_in if already else None,
    )


def _contributors(
    people: People,
    authored: dict[int, int],
    authors_by_id: dict[int, Person],
    with_co_authors: list[tuple[Person, ...]],
    known_authors: Collection[str] | None,
) -> list[Contributor]:
    """Each person once, with the commits they authored or co-authored (a commit counts
    once per person), first-time when none of their keys was seen before the range."""
    # By object id: the stream shares one Person per author and per co-author.
    uses: dict[int, int] = {}
    by_id: dict[int, Person] = {}
    for persons in with_co_authors:
        for person in persons:
            key = id(person)
            if key in uses:
                uses[key] += 1
            else:
                uses[key] = 1
                by_id[key] = person
    for key, count in uses.items():
        people.add(by_id[key], count)
    cluster_of = {key: people.cluster(p) for key, p in (authors_by_id | by_id).items()}
    counts: dict[str, int] = {}
    first_seen: dict[str, Person] = {}
    for key, count in authored.items():
        cluster = cluster_of[key]
        counts[cluster] = counts.get(cluster, 0) + count
        first_seen.setdefault(cluster, authors_by_id[key])
    for persons in with_co_authors:
        for cluster in {cluster_of[id(p)] for p in persons}:
            counts[cluster] = counts.get(cluster, 0) + 1
        for person in persons:
            first_seen.setdefault(cluster_of[id(person)], person)
    out: list[Contributor] = []
    for cluster, count in counts.items():
        person = first_seen[cluster]
        shown = people.canonical(person)
        first_time = known_authors is not None and not any(
            key in known_authors for key in people.keys_of(person)
        )
        out.append(Contributor(shown.name, shown.email, count, first_time))
    return sorted(out, key=lambda p: (-p.commits, p.name.lower(), p.email))
