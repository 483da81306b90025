"""Search text: how documents and queries are normalised, what a query's terms match, the
short-term index entries ("grams") and the highlighted snippets.

Pure module: no database, no Flask, no I/O; both databases get their text from here, so that
they match the same characters.

- **Normalisation**: NFKC, then case folding (full-width ``ＰＯＳ`` and ``pos`` are the same,
  so are half-width ``ｶｲｹｲ`` and ``カイケイ``). Documents are stored normalised and queries
  are normalised the same way, so each database matches case-sensitively, byte for byte.
- **Terms**: the query is split on whitespace (``"double quotes"`` keep a phrase). Every
  term must appear in a document (AND). A term of three or more characters (with at least
  two letters or digits) matches anywhere in the text: the trigram indexes (SQLite FTS5
  ``trigram``, PostgreSQL ``pg_trgm``) answer it. Trigrams cannot answer a shorter term, so
  each document also carries its *grams*: every pair of adjacent non-ASCII characters
  (``会計``, ``割り``), every single CJK ideograph (``税``) and every two-letter ASCII word
  (``qr``, ``ui``, ``5g``). A two-character term of non-ASCII characters or a single
  ideograph then matches anywhere, like a long term; a two-character ASCII term matches a
  whole word (``UI`` finds "UI", not "build"). Other terms (one Latin letter, punctuation)
  are ignored and reported.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "MAX_QUERY_CHARS",
    "MAX_TERMS",
    "Query",
    "QueryError",
    "Term",
    "app_token",
    "clean",
    "grams",
    "highlight",
    "kind_token",
    "normalize",
    "parse_query",
]

MAX_QUERY_CHARS = 200
MAX_TERMS = 8
# How a term is matched (see the module docstring).
SUBSTRING = "substring"  # three characters or more: the trigram index
GRAM = "gram"  # two non-ASCII characters, or one ideograph: the gram index, anywhere
WORD = "word"  # two ASCII letters or digits: the gram index, a whole word

_WORD_CHARS = "0-9a-z"
_ASCII_WORD2 = re.compile(rf"(?<![{_WORD_CHARS}])[{_WORD_CHARS}]{{2}}(?![{_WORD_CHARS}])")
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]{2,}")
# CJK unified ideographs (with extension A, the compatibility block and the supplementary
# planes' extensions): the characters a single-character query may name.
_IDEOGRAPH_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
_IDEOGRAPH = re.compile(f"[{_IDEOGRAPH_RANGES}]")
_TERM = re.compile(r'"([^"]*)"|(\S+)')
_SPACE = re.compile(r"\s+")


class QueryError(ValueError):
    """A query that cannot be searched for, with a message for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def normalize(text: str) -> str:
    """The form documents are stored and queries are matched in: NFKC, case-folded."""
    if text.isascii():  # NFKC leaves ASCII alone, and casefold() is lower() there
        return text.lower()
    return unicodedata.normalize("NFKC", text).casefold()


def clean(text: str | None) -> str:
    """Text as a document keeps it: whitespace runs made one space, NUL removed."""
    if not text:
        return ""
    # Most text is already clean (commit subjects, the notes engine's one-line bodies):
    # printable (no tab, newline, NUL or other space than " ") with single spaces.
    if text.isprintable() and "  " not in text and text[0] != " " and text[-1] != " ":
        return text
    return _SPACE.sub(" ", text.replace("\x00", "")).strip()


def grams(normalized: str) -> str:
    """The gram index entries of a normalised document, space-separated and sorted: every
    pair of adjacent non-ASCII characters, every ideograph, every two-letter ASCII word."""
    found = set(_ASCII_WORD2.findall(normalized))
    if not normalized.isascii():
        for run in _NON_ASCII_RUN.findall(normalized):
            found.update(map(str.__add__, run, run[1:]))
        found.update(_IDEOGRAPH.findall(normalized))
    return " ".join(sorted(found))


def app_token(app_id: int) -> str:
    """The entry that marks a document of app ``app_id`` among its grams (the app filter is
    answered by the gram index too; no gram is this long and ASCII)."""
    return f"zzapp{app_id}"


def kind_token(kind: str) -> str:
    """The entry that marks a document of ``kind`` among its grams."""
    return f"zzkind{kind}"


@dataclass(frozen=True)
class Term:
    """One normalised query term and how it is matched (``SUBSTRING``, ``GRAM``, ``WORD``)."""

    text: str
    mode: str

    @property
    def trigram(self) -> bool:
        """Answered by the trigram index (else by the gram index)."""
        return self.mode == SUBSTRING


@dataclass(frozen=True)
class Query:
    terms: tuple[Term, ...]
    ignored: tuple[str, ...]  # the terms too short to search for, as typed (normalised)


def _classify(term: str) -> Term | None:
    if len(term) >= 3 and sum(c.isalnum() for c in term) >= 2:
        return Term(term, SUBSTRING)
    if len(term) == 2 and ord(term[0]) >= 0x80 and ord(term[1]) >= 0x80:
        return Term(term, GRAM)
    if len(term) == 2 and _ASCII_WORD2.fullmatch(term):
        return Term(term, WORD)
    letters = "".join(c for c in term if c.isalnum())
    if len(letters) == 1 and _IDEOGRAPH.fullmatch(letters):
        return Term(letters, GRAM)
    return None


def parse_query(raw: str) -> Query:
    """The terms of ``raw``; :class:`QueryError` when there is nothing to search for."""
    raw = raw.strip()
    if not raw:
        raise QueryError("type a word to search for")
    if len(raw) > MAX_QUERY_CHARS:
        raise QueryError(f"at most {MAX_QUERY_CHARS} characters")
    if "\x00" in raw:
        raise QueryError("the query contains a NUL character")
    terms: list[Term] = []
    ignored: list[str] = []
    seen: set[str] = set()
    for phrase, word in _TERM.findall(normalize(raw)):
        text = " ".join(phrase.split()) if phrase else word.strip('"')
        if not text or text in seen:
            continue
        seen.add(text)
        term = _classify(text)
        if term is None:
            ignored.append(text)
        elif term.text not in {t.text for t in terms}:
            terms.append(term)
    if len(terms) > MAX_TERMS:
        raise QueryError(f"at most {MAX_TERMS} words")
    if not terms:
        raise QueryError(
            "too short to search for: use words of 3 or more characters, 2 for Japanese "
            "or a whole word such as QR, or a single kanji"
        )
    return Query(tuple(terms), tuple(ignored))


# --- highlighting ------------------------------------------------------------------------


def _joins_previous(char: str) -> bool:
    # Combining marks and the half-width (semi-)voiced sound marks, which NFKC composes
    # with the character before them (ｶﾞ → ガ).
    return unicodedata.combining(char) != 0 or char in "\uff9e\uff9f"


def _normalize_mapped(text: str) -> tuple[str, list[int], list[int]]:
    """``normalize(text)`` and, for each of its characters, the start and end in ``text``
    of the characters it came from (normalised a base character with its marks at a time)."""
    if text.isascii():
        positions = list(range(len(text)))
        return text.lower(), positions, [p + 1 for p in positions]
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        while j < n and _joins_previous(text[j]):
            j += 1
        piece = normalize(text[i:j])
        out.append(piece)
        starts.extend([i] * len(piece))
        ends.extend([j] * len(piece))
        i = j
    return "".join(out), starts, ends


def _spans(normalized: str, terms: Iterable[Term]) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    for term in terms:
        if term.mode == WORD:
            pattern = rf"(?<![{_WORD_CHARS}]){re.escape(term.text)}(?![{_WORD_CHARS}])"
            found.extend(m.span() for m in re.finditer(pattern, normalized))
            continue
        at = normalized.find(term.text)
        while at >= 0:
            found.append((at, at + len(term.text)))
            at = normalized.find(term.text, at + len(term.text))
    found.sort()
    merged: list[tuple[int, int]] = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _window(text: str, spans: Sequence[tuple[int, int]], size: int) -> tuple[int, int]:
    """The part of ``text`` (about ``size`` characters) holding the most matches."""
    if len(text) <= size:
        return 0, len(text)
    best, best_count = 0, -1
    for i, (start, _) in enumerate(spans):
        count = sum(1 for s, _ in spans[i:] if s < start + size)
        if count > best_count:
            best, best_count = i, count
    start = spans[best][0] - size // 4 if spans else 0
    start = max(0, min(start, len(text) - size))
    end = min(len(text), start + size)
    # Do not cut a word in two where words are separated by spaces.
    if start > 0:
        space = text.rfind(" ", max(0, start - 15), start + 1)
        if space >= 0:
            start = space + 1
    if end < len(text):
        space = text.find(" ", end - 1, end + 15)
        if space >= 0:
            end = space
    return start, end


def highlight(text: str, terms: Sequence[Term], *, size: int | None = None) -> str:
    """``text`` as escaped HTML with each match of ``terms`` in ``<mark>``; with ``size``,
    only the part of about that many characters with the most matches, "…" marking a cut."""
    normalized, starts, ends = _normalize_mapped(text)
    spans = [(starts[s], ends[e - 1]) for s, e in _spans(normalized, terms)]
    lo, hi = (0, len(text)) if size is None else _window(text, spans, size)
    parts = ["…"] if lo > 0 else []
    at = lo
    for start, end in spans:
        if end <= lo or start >= hi:
            continue
        start, end = max(start, lo), min(end, hi)
        parts.append(html.escape(text[at:start]))
        parts.append(f"<mark>{html.escape(text[start:end])}</mark>")
        at = end
    parts.append(html.escape(text[at:hi]))
    if hi < len(text):
        parts.append("…")
    return "".join(parts)
