"""Version strings as store apps really use them, parsed once and compared by meaning.

Pure module: no I/O. Every package (release notes, beta, adoption) imports the parser from
here so that ``3.12.0-beta.2 < 3.12.0 < 3.12.0+456 < 3.12.1`` holds everywhere.

Accepted: an optional ``v``, one or more dot-separated numbers (``2024.07.1``, ``3.12``,
``3.12.0``), an optional pre-release after ``-`` (``beta.2``, ``rc1``) and an optional build
after ``+`` (``456``, ``build.7``). Trailing zero components do not matter: ``3.12 == 3.12.0``.
Every number in a version (a release component, a numeric pre-release or build identifier) is
at most :data:`MAX_NUMBER`, what a signed 64-bit integer holds: build numbers such as
``20240701123456`` fit, ``99999999999999999999.0.0`` is refused.

:mod:`versioning.storage_key` turns a version into text whose byte order is version order,
for SQL columns.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

__all__ = [
    "MAX_NUMBER",
    "InvalidVersion",
    "Version",
    "is_valid_version",
    "parse_version",
    "sort_key",
]

_IDENT = r"[0-9A-Za-z-]+"
_VERSION_RE = re.compile(
    rf"""
    ^\s*[vV]?
    (?P<release>\d+(?:\.\d+)*)
    (?:-(?P<pre>{_IDENT}(?:\.{_IDENT})*))?
    (?:\+(?P<build>{_IDENT}(?:\.{_IDENT})*))?
    \s*$
    """,
    re.VERBOSE,
)
_MAX_LENGTH = 128
MAX_NUMBER = 2**63 - 1  # a signed 64-bit integer (BIGINT, int64 in every client)


class InvalidVersion(ValueError):
    """A string that is not a version this service understands."""


Identifier = tuple[int, int | str]  # (0, number) sorts before (1, text), as in SemVer


def _identifiers(text: str | None) -> tuple[Identifier, ...]:
    if not text:
        return ()
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in text.split("."))


@functools.total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A parsed version. Compare instances, never the strings they came from."""

    original: str
    release: tuple[int, ...]
    pre: tuple[Identifier, ...] = ()
    build: tuple[Identifier, ...] = ()
    _key: tuple[object, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        release = list(self.release)
        while len(release) > 1 and release[-1] == 0:
            release.pop()
        # A release sorts after its pre-releases; no build sorts before any build.
        pre_key: tuple[object, ...] = (0, self.pre) if self.pre else (1, ())
        build_key: tuple[object, ...] = (1, self.build) if self.build else (0, ())
        object.__setattr__(self, "_key", (tuple(release), pre_key, build_key))

    @property
    def is_prerelease(self) -> bool:
        return bool(self.pre)

    @property
    def base(self) -> tuple[int, ...]:
        """The release tuple without trailing zeros (``3.12.0`` → ``(3, 12)``)."""
        key = self._key[0]
        assert isinstance(key, tuple)
        return key

    @property
    def build_number(self) -> int | None:
        """The build as a number when it is one (``3.12.0+456`` → 456)."""
        if len(self.build) == 1 and self.build[0][0] == 0:
            value = self.build[0][1]
            assert isinstance(value, int)
            return value
        return None

    def sort_key(self) -> tuple[object, ...]:
        return self._key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key == other._key

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return _lt(self._key, other._key)

    def __hash__(self) -> int:
        return hash(repr(self._key))

    def __str__(self) -> str:
        return self.original


def _lt(a: object, b: object) -> bool:
    # Keys mix ints and strs only inside (kind, value) pairs whose kind differs first,
    # so plain tuple comparison is safe.
    return bool(a < b)  # type: ignore[operator]


@functools.lru_cache(maxsize=65536)
def parse_version(text: str) -> Version:
    """Parse ``text`` or raise :class:`InvalidVersion` saying what is wrong with it."""
    if not isinstance(text, str):
        raise InvalidVersion(f"version must be a string, not {type(text).__name__}")
    if len(text) > _MAX_LENGTH:
        raise InvalidVersion(f"version is longer than {_MAX_LENGTH} characters")
    match = _VERSION_RE.match(text)
    if match is None:
        shown = text if text.strip() else "(empty)"
        raise InvalidVersion(
            f"{shown!r} is not a version: expected numbers separated by dots, "
            "like 3.12.0, 2024.07.1, 3.12.0-beta.2 or 3.12.0+456"
        )
    version = Version(
        original=text.strip(),
        release=tuple(int(part) for part in match["release"].split(".")),
        pre=_identifiers(match["pre"]),
        build=_identifiers(match["build"]),
    )
    numbers = [*version.release, *(v for kind, v in (*version.pre, *version.build) if kind == 0)]
    too_large = next((n for n in numbers if isinstance(n, int) and n > MAX_NUMBER), None)
    if too_large is not None:
        raise InvalidVersion(
            f"{version.original!r} is not a version: its number {too_large} is too large "
            f"(each number in a version is at most {MAX_NUMBER})"
        )
    return version


def is_valid_version(text: str) -> bool:
    try:
        parse_version(text)
    except InvalidVersion:
        return False
    return True


def sort_key(text: str) -> tuple[int, object]:
    """A key to sort version strings that may be invalid: the invalid ones first, by their
    text, then the valid ones in version order (equal versions such as ``3.12`` and
    ``3.12.0`` get equal keys)."""
    try:
        version = parse_version(text)
    except InvalidVersion:
        return (0, text)
    return (1, version.sort_key())
