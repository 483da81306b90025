"""Who is who: one person behind several names, emails and co-author lines.

Pure module: no git, no I/O. A person shows up in a range as commit authors (already
through ``.mailmap``: git applies it to ``%aN``/``%aE``) and as ``Co-authored-by:`` lines
(which git does not map; :mod:`release_notes.generate` maps them with ``git
check-mailmap``). Two appearances are the same person when they share one of their
:func:`identity_keys`:

- the email, case-insensitive;
- the GitHub login of a noreply address (``12345+login@users.noreply.github.com`` and
  ``login@users.noreply.github.com`` are the same account);
- the name, case-insensitive with whitespace collapsed, when it is a full name of two or
  more words (``Niklas Marder``), not a generic account name (``Your Name``...) nor an
  email. A one-word name (``andrew``, ``Leo``, a login) is shared by too many unrelated
  people: it joins nothing by itself (vite's ``Leo <...@outlook.com>`` is not the earlier
  ``Leo <...+yuyinws@users.noreply.github.com>``).

:class:`People` joins appearances that share a key (transitively: a name links an email to
a noreply login, which links another email) and names each person once. The keys are
also what the first-time-contributor scan looks for in the older history
(:class:`release_notes.git_history.AuthorScan`): an email key is the email itself, so a
plain set of lower-case emails is a valid set of keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from release_notes.commits import Person

__all__ = ["LOGIN_KEY", "NAME_KEY", "People", "ascii_lower", "github_login", "identity_keys"]

# Prefixes that keep the three kinds of key apart (an email never starts with them). They
# are also what the history scan writes before a name (``%x02%aN``).
NAME_KEY = "\x02"
LOGIN_KEY = "\x03"
NOREPLY_DOMAIN = "@users.noreply.github.com"
_NOREPLY_RE = re.compile(r"(?:\d+\+)?([^@+\s<>]+)@users\.noreply\.github\.com")

# Names that many unrelated people commit under: never a reason to join two of them.
GENERIC_NAMES = frozenset(
    {
        "",
        "admin",
        "administrator",
        "anonymous",
        "bot",
        "build",
        "ci",
        "default",
        "dev",
        "developer",
        "git",
        "github",
        "github action",
        "github actions",
        "gitlab",
        "jenkins",
        "me",
        "name",
        "nobody",
        "root",
        "runner",
        "test",
        "test user",
        "ubuntu",
        "unknown",
        "user",
        "your name",
    }
)


def ascii_lower(text: str) -> str:
    """Lower-case ASCII letters only, as ``bytes.lower`` does (what the history scan uses)."""
    if text.isascii():
        return text.lower()
    return text.encode("utf-8", "replace").lower().decode("utf-8", "replace")


def github_login(email: str) -> str | None:
    """The login of a GitHub noreply address (lower-case), else None."""
    if not email.lower().endswith(NOREPLY_DOMAIN):
        return None
    match = _NOREPLY_RE.fullmatch(ascii_lower(email.strip()))
    return match.group(1) if match else None


def identity_keys(person: Person) -> tuple[str, ...]:
    """The keys that identify ``person``: email, GitHub login, specific name."""
    keys: list[str] = []
    email = ascii_lower(person.email.strip())
    if email:
        keys.append(email)
        login = github_login(email)
        if login:
            keys.append(LOGIN_KEY + login)
    name = ascii_lower(" ".join(person.name.split()))
    if " " in name and name not in GENERIC_NAMES and "@" not in name:
        keys.append(NAME_KEY + name)
    return tuple(keys)


class People:
    """The persons of a range, joined by shared keys; each named once.

    :meth:`add` every appearance (author or co-author) first; :meth:`canonical`,
    :meth:`dedupe` and :meth:`keys_of` then read the joined result (adding more later is
    allowed: the result is recomputed when next read).
    """

    __slots__ = ("_canonical", "_keys", "_members", "_parent", "_uses")

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}
        self._keys: dict[Person, tuple[str, ...]] = {}
        self._uses: dict[Person, int] = {}
        self._canonical: dict[str, Person] | None = None
        self._members: dict[str, list[Person]] | None = None

    def _find(self, key: str) -> str:
        parent = self._parent
        root = key
        while parent[root] != root:
            root = parent[root]
        while parent[key] != root:  # path compression
            parent[key], key = root, parent[key]
        return root

    def add(self, person: Person, uses: int = 1) -> None:
        """One or more appearances of ``person``."""
        known = self._keys.get(person)
        if known is None:
            # No usable key (a generic name, no email): this exact name and email only.
            keys = identity_keys(person) or ("\x04" + person.name + "\x1f" + person.email,)
            self._keys[person] = keys
            parent = self._parent
            for key in keys:
                parent.setdefault(key, key)
            first = self._find(keys[0])
            for key in keys[1:]:
                root = self._find(key)
                if root != first:
                    parent[root] = first
            self._canonical = None
        self._uses[person] = self._uses.get(person, 0) + uses

    def cluster(self, person: Person) -> str:
        """The id of ``person``'s cluster (``person`` must have been added)."""
        return self._find(self._keys[person][0])

    def _resolve(self) -> dict[str, Person]:
        if self._canonical is not None:
            return self._canonical
        members: dict[str, list[Person]] = {}
        for person in self._keys:  # in the order they were first added
            members.setdefault(self.cluster(person), []).append(person)
        canonical: dict[str, Person] = {}
        for root, persons in members.items():
            canonical[root] = self._pick(persons)
        self._members = members
        self._canonical = canonical
        return canonical

    def _pick(self, persons: list[Person]) -> Person:
        """The name used most (a name with a space, like a full name, wins a tie), and the
        email used most that is not a noreply address (when there is one)."""
        uses = self._uses
        names: dict[str, int] = {}
        for p in persons:
            if p.name:
                names[p.name] = names.get(p.name, 0) + uses.get(p, 0)
        name = max(names, key=lambda n: (names[n], " " in n.strip()), default="")
        emails: dict[str, int] = {}
        for p in persons:
            if p.email:
                emails[p.email] = emails.get(p.email, 0) + uses.get(p, 0)
        email = max(
            emails,
            key=lambda e: (not e.lower().endswith(NOREPLY_DOMAIN), emails[e]),
            default="",
        )
        return Person(name or email, email)

    def canonical(self, person: Person) -> Person:
        """The one name and email ``person``'s cluster is shown with."""
        return self._resolve()[self.cluster(person)]

    def dedupe(self, persons: Iterable[Person]) -> tuple[Person, ...]:
        """Each cluster once, by its canonical person, in order of first appearance."""
        canonical = self._resolve()
        out: list[Person] = []
        seen: set[str] = set()
        for person in persons:
            root = self.cluster(person)
            if root not in seen:
                seen.add(root)
                out.append(canonical[root])
        return tuple(out)

    def keys_of(self, person: Person) -> set[str]:
        """Every key of every appearance in ``person``'s cluster."""
        self._resolve()
        assert self._members is not None
        keys: set[str] = set()
        for member in self._members[self.cluster(person)]:
            keys.update(self._keys[member])
        return keys
