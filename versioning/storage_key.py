"""Versions as sortable text (storage keys), so that SQL can order and compare them.

Pure module: no I/O. :func:`version_sort_key` turns a parsed :class:`~versioning.Version`
into a string whose plain byte order (SQLite ``BINARY``, PostgreSQL ``COLLATE "C"``) is the
order of the versions themselves, so ``WHERE version_key < :minimum`` means "older than the
minimum supported version" and ``ORDER BY version_key`` sorts by meaning, not by text.
``version_monitor`` stores these keys beside its version columns (at most
:data:`VERSION_KEY_LENGTH` characters).

Encoding, chosen so that every part is prefix-free and order-preserving:

- a number is its digit count on three digits, then its digits (``12`` → ``00212``);
- an identifier is ``0`` + number or ``1`` + text + ``!`` (numbers before text, as in SemVer;
  ``!`` sorts below every character a version identifier may contain);
- a tuple is ``#`` + item for each item, then ``!`` (a shorter tuple that is a prefix of a
  longer one sorts first);
- the key is release tuple, then ``0`` + pre-release tuple or ``1`` (a release sorts after its
  pre-releases), then ``0`` or ``1`` + build tuple (no build sorts before any build).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from versioning import Version, parse_version

__all__ = ["VERSION_KEY_LENGTH", "key_of", "version_sort_key"]

VERSION_KEY_LENGTH = 512


def _number(value: int) -> str:
    digits = str(value)
    return f"{len(digits):03d}{digits}"


def _identifier(item: tuple[int, int | str]) -> str:
    kind, value = item
    if kind == 0:
        assert isinstance(value, int)
        return "0" + _number(value)
    return f"1{value}!"


def _tuple(items: Iterable[str]) -> str:
    return "".join("#" + item for item in items) + "!"


@functools.lru_cache(maxsize=65536)
def version_sort_key(version: Version) -> str:
    """The byte-sortable key of ``version`` (equal versions get equal keys)."""
    release = _tuple(_number(part) for part in version.base)
    pre = "0" + _tuple(_identifier(i) for i in version.pre) if version.pre else "1"
    build = "1" + _tuple(_identifier(i) for i in version.build) if version.build else "0"
    return release + pre + build


def key_of(text: str) -> str:
    """Parse ``text`` and return its sort key; raises :class:`versioning.InvalidVersion`."""
    return version_sort_key(parse_version(text))
