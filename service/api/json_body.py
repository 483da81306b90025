"""Reading a JSON request body: the one parser every endpoint that takes JSON uses.

A body that does not parse, or nests arrays and objects deeper than :data:`MAX_DEPTH`
levels, is :class:`InvalidJson` (each caller answers 400 ``invalid_json``). No body this
service takes nests more than a few levels; refusing deeper ones here means nothing after
the parse (validation, the NUL check, audit, storage) can run out of stack on one, and a
body nested a thousand levels is a 400 instead of a ``RecursionError``.
"""

from __future__ import annotations

import json
import operator
from itertools import chain, compress, repeat
from typing import Any

MAX_DEPTH = 64


class InvalidJson(ValueError):
    """The body is not JSON this service reads; ``str()`` says why."""


def parse(raw: bytes) -> Any:
    """The JSON value of ``raw`` (an empty body is ``None``), or :class:`InvalidJson`."""
    try:
        data = json.loads(raw or b"null")
    except RecursionError:  # far deeper than MAX_DEPTH: the parser ran out of stack
        raise InvalidJson(_TOO_DEEP) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJson(str(exc)) from None
    # Only a body with more brackets than MAX_DEPTH can nest that deep (not a heartbeat, not
    # most requests): only then is the value walked.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _deeper_than(data, MAX_DEPTH):
        raise InvalidJson(_TOO_DEEP)
    return data


_TOO_DEEP = f"arrays and objects nest deeper than {MAX_DEPTH} levels"
_IS_CONTAINER = frozenset({dict, list}).__contains__


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` (as ``json.loads`` makes it: dicts, lists, scalars) nests dicts and
    lists more than ``limit`` levels. One level at a time, without recursion, and with the
    per-item work done by C built-ins (``map``, ``compress``, ``chain``): a batch of 1,000
    heartbeats takes a fraction of its parse."""
    level = [value] if _IS_CONTAINER(type(value)) else []
    for _ in range(limit):
        if not level:
            return False
        types = list(map(type, level))
        dicts = compress(level, map(operator.is_, types, repeat(dict)))
        lists = compress(level, map(operator.is_, types, repeat(list)))
        children = list(chain(chain.from_iterable(map(dict.values, dicts)), *lists))
        level = list(compress(children, map(_IS_CONTAINER, map(type, children))))
    return bool(level)
