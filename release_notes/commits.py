"""Parse one raw git commit into a :class:`ParsedCommit`.

Pure module: no git, no I/O. It understands Conventional Commits 1.0 (``type(scope)!:
subject``, ``BREAKING CHANGE:`` / ``BREAKING-CHANGE:`` footers, with case and whitespace
variants), GitHub squash subjects ``... (#123)`` and merge subjects ``Merge pull request
#123 from org/branch``, issue references (``Fixes #12``, ``Refs ABC-123``),
``Co-authored-by:`` and ``Release-Note:`` trailers, ``[skip changelog]`` markers,
``This reverts commit <sha>`` bodies and ``git cherry-pick -x`` lines (``(cherry picked from
commit <sha>)``). A message that is not conventional is kept with kind ``other``: nothing is
dropped here; filtering is decided in :mod:`release_notes.notes`.

The excerpt (:attr:`ParsedCommit.body`) is the first paragraph of the body that is prose,
kept whole (see :func:`_excerpt`).

The parser is on the hot path (200,000 commits in a few hundred milliseconds), so each
rule is guarded by a cheap substring test before its regular expression runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "FIELDS",
    "KIND_ORDER",
    "KIND_TITLES",
    "ParsedCommit",
    "Person",
    "kind_for",
    "parse_commit",
    "parse_message",
]

# Section keys in the order the notes show them, with their headings.
KIND_TITLES: dict[str, str] = {
    "feat": "Features",
    "fix": "Fixes",
    "perf": "Performance",
    "refactor": "Refactoring",
    "docs": "Documentation",
    "test": "Tests",
    "build": "Build/CI",
    "deps": "Dependencies",
    "other": "Other changes",
}
KIND_ORDER: tuple[str, ...] = tuple(KIND_TITLES)

_TYPE_TO_KIND: dict[str, str] = {
    "feat": "feat",
    "feature": "feat",
    "features": "feat",
    "fix": "fix",
    "fixes": "fix",
    "bugfix": "fix",
    "hotfix": "fix",
    "perf": "perf",
    "performance": "perf",
    "refactor": "refactor",
    "docs": "docs",
    "doc": "docs",
    "test": "test",
    "tests": "test",
    "build": "build",
    "ci": "build",
    "deps": "deps",
    "dep": "deps",
}
_DEPS_SCOPES = frozenset({"deps", "deps-dev", "dependencies", "dependency"})

# Stored text is capped so that a megabyte-long body cannot blow up memory or the page.
MAX_PARAGRAPH_CHARS = 1_000
MAX_RELEASE_NOTE_CHARS = 4_000
# Bodies longer than this are scanned at the head and the tail only (trailers live there).
_SCAN_LIMIT = 256 * 1024
_SCAN_KEEP = 64 * 1024

_CONVENTIONAL_RE = re.compile(
    r"""
    ^\s*
    (?P<type>[A-Za-z][A-Za-z0-9_-]*)
    [ \t]*
    (?:\([ \t]*(?P<scope>[^()\r\n]*?)[ \t]*\))?
    [ \t]*
    (?P<bang>!)?
    [ \t]*:[ \t]*
    (?P<desc>\S.*)
    """,
    re.VERBOSE,
)
_MERGE_PR_RE = re.compile(r"^Merge pull request #(\d+) from (\S+)", re.IGNORECASE)
_GITLAB_MR_RE = re.compile(r"^See merge request \S*!(\d+)\s*$", re.MULTILINE | re.IGNORECASE)
_REVERT_SUBJECT_RE = re.compile(r'^Revert\s+"(?P<inner>.*)"\s*$', re.IGNORECASE)
_REVERT_BODY_RE = re.compile(r"This reverts commit ([0-9a-fA-F]{7,40})", re.IGNORECASE)
_BREAKING_RE = re.compile(
    r"^[ \t]*BREAKING[ -]CHANGES?[ \t]*(?::|[ \t]#)[ \t]*(?P<text>.*)$", re.MULTILINE
)
_CO_AUTHOR_RE = re.compile(
    r"^[ \t]*co-authored-by[ \t]*:[ \t]*(?P<name>[^<\r\n]*?)[ \t]*<(?P<email>[^>\r\n]*)>",
    re.MULTILINE | re.IGNORECASE,
)
_REF = r"(?-i:(?:[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)?\#\d+|\b[A-Z][A-Z0-9]{1,9}-\d+\b)"
_ISSUE_RE = re.compile(
    rf"""
    \b(?:fix(?:e[sd])?|close[sd]?|resolve[sd]?|refs?|references|related(?:[ \t]+to)?
       |see(?:[ \t]+also)?|part[ \t]+of|issues?|implements)
    [ \t]*:?[ \t]*
    (?P<refs>(?:{_REF})(?:[ \t]*(?:,|and|&)?[ \t]*(?:{_REF}))*)
    """,
    re.VERBOSE | re.IGNORECASE,
)
_REF_RE = re.compile(_REF)
_RELEASE_NOTE_RE = re.compile(r"^[ \t]*release[ -]?notes?[ \t]*:[ \t]*(.*)$", re.IGNORECASE)
_RELEASE_NOTE_FENCE_RE = re.compile(
    r"^```[ \t]*release[-_ ]?notes?[ \t]*\n(?P<text>.*?)^```", re.IGNORECASE | re.MULTILINE | re.S
)
_TRAILER_LINE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*(?: [A-Za-z]+)?[ \t]*:[ \t]")
_CHERRY_PICK_RE = re.compile(
    r"^[ \t]*\(cherry picked from commit ([0-9a-fA-F]{7,40})\)[ \t]*$", re.MULTILINE
)
_CHERRY_PICK_INLINE_RE = re.compile(r"\(cherry picked from commit [0-9a-fA-F]{7,40}\)")
_SKIP_RE = re.compile(
    r"\[\s*(?:skip[ _-]?changelog|changelog[ _-]?skip|no[ _-]?changelog"
    r"|skip[ _-]?release[ _-]?notes?)\s*\]",
    re.IGNORECASE,
)
_NONE_NOTES = frozenset({"none", "n/a", "na", "no", "-", "nothing", "`none`"})


@dataclass(frozen=True, slots=True)
class Person:
    """An author or co-author. ``email`` is the identity; ``name`` is for display."""

    name: str
    email: str


@dataclass(slots=True)
class ParsedCommit:
    """Everything the notes need from one commit. Built by :func:`parse_commit`.

    The subject is nearly always a slice of the header (``feat(x): <subject> (#12)``), so
    it is stored as that slice's bounds (:func:`_span`), not as a second copy of the text:
    on a 200,000-commit history that is ~15 MiB less. :attr:`subject` reads it back.
    """

    sha: str
    parents: tuple[str, ...]
    author: Person
    date: str
    subject_text: str | int  # the subject, or its bounds in ``header`` (see ``subject``)
    header: str  # the first line as written
    type: str | None  # the conventional type, lower-cased; None when not conventional
    kind: str  # one of KIND_ORDER
    scope: str | None
    breaking: bool
    breaking_description: str | None
    body: str | None  # first paragraph of the body, unwrapped, capped
    pr_number: int | None
    issue_text: str  # the lines that may hold issue references (see ``issue_refs``)
    co_authors: tuple[Person, ...]
    release_note: str | None  # user-facing text from ``Release-Note:``
    release_note_none: bool  # ``Release-Note: none``
    skip_changelog: bool
    reverts: str | None  # sha named by ``This reverts commit <sha>``
    is_merge: bool
    # shas named by ``(cherry picked from commit <sha>)`` lines (lower-case), in order
    cherry_picked_from: tuple[str, ...] = ()

    @property
    def subject(self) -> str:
        """The description without type, scope or trailing ``(#123)``."""
        text = self.subject_text
        if isinstance(text, str):
            return text
        return self.header[text >> _SPAN_BITS : text & _SPAN_MASK]

    @property
    def issue_refs(self) -> tuple[str, ...]:
        """Issue references (``#12``, ``org/repo#3``, ``ABC-12``), in order, no duplicates.

        Read from ``issue_text`` when asked: the keyword pattern is the costliest rule of the
        parser, and the Markdown notes never show references (the JSON does)."""
        text = self.issue_text
        if not text:
            return ()
        found: list[str] = []
        _line_refs(text, 0, len(text), found)  # no match spans lines
        return tuple(found)

    @property
    def merge_branch(self) -> str | None:
        """``org/branch`` of ``Merge pull request #1 from org/branch``, read from the header."""
        header = self.header
        merge = _MERGE_PR_RE.match(header) if header[:5].lower() == "merge" else None
        return merge.group(2) if merge is not None else None

    @property
    def conventional(self) -> bool:
        return self.type is not None

    @property
    def is_root(self) -> bool:
        return not self.parents

    @property
    def short_sha(self) -> str:
        return self.sha[:7]


# The fields of a parsed commit, as attributes (``subject`` rather than its storage, and
# the two derived on demand: references rarely read, the branch read from the header).
_STORED_AS = {"subject_text": "subject", "issue_text": "issue_refs"}
FIELDS: tuple[str, ...] = (
    *(_STORED_AS.get(name, name) for name in ParsedCommit.__slots__),
    "merge_branch",
)

# ``header[start:end]`` packed in one int, the ints shared (most commits have the same few
# bounds), so a subject costs one pointer. Headers too long to pack keep their subject text.
_SPAN_BITS = 12
_SPAN_MASK = (1 << _SPAN_BITS) - 1
_SPANS: dict[int, int] = {}


def _span(header: str, start: int, end: int) -> str | int:
    if end > _SPAN_MASK:
        return header[start:end]
    packed = start << _SPAN_BITS | end
    shared = _SPANS.get(packed)
    if shared is None:
        if len(_SPANS) < 1 << 16:
            _SPANS[packed] = packed
        return packed
    return shared


def kind_for(type_: str | None, scope: str | None) -> str:
    """The notes section of a conventional ``type`` (``other`` when unknown or None)."""
    if type_ is None:
        return "other"
    if scope is not None and scope.lower() in _DEPS_SCOPES:
        return "deps"
    return _TYPE_TO_KIND.get(type_, "other")


# A first character that may open something other than prose: a list item, heading, quote,
# code, table, separator, HTML comment, ``(cherry picked from ...)``; or a space (indented).
_ODD_FIRST = frozenset("*-+#>`~=_|<( \t0123456789")
# ...and what inside a paragraph may start a list or code below a line of prose (one regex
# scan: a loop of substring tests costs several times more on the hot path).
_ODD_INSIDE_RE = re.compile(r"\n[-*+`~1#>|]")
_LIST_ITEM_RE = re.compile(r"[ \t]{0,3}(?:[-*+]|\d{1,9}[.)])[ \t]+(?P<text>\S.*)")
_HEADING_RE = re.compile(r"[ \t]{0,3}#{1,6}(?:[ \t]|$)")
_SEPARATOR_RE = re.compile(r"[ \t]{0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,}|={3,})")
# The end of a sentence: ``.``, ``!``, ``?`` or ``…`` (after any closing quote, bracket or
# emphasis), then whitespace or the end.
_SENTENCE_END_RE = re.compile(r"[.!?…][\"')\]*_`]*(?=\s|$)")
# A list completing an introduction ("... in this order:") is inlined when it is this short.
_INLINE_LIST_ITEMS = 8
_INLINE_LIST_ITEM_CHARS = 80
_INLINE_LIST_CHARS = 400


def _excerpt(body: str) -> str | None:
    """The excerpt of a commit body: its first paragraph of prose, whole, lines joined.

    Not prose, so never an excerpt: fenced or indented code, lists (among them GitHub's
    list of the squashed commits, ``* feat: ...``), headings, quotes, tables, separators
    (``---------``), HTML comments, trailer blocks (``Co-authored-by: ...``), a
    ``BREAKING CHANGE`` footer and ``(cherry picked from commit ...)`` lines; the first
    paragraph of prose after them is taken instead. A paragraph ending with a colon
    introduces what follows: a short list after it is inlined (``...in this order: a, b,
    c.``); otherwise the sentences before the introducing one are kept, and a paragraph
    that is only the introduction is passed over. Beyond ``MAX_PARAGRAPH_CHARS`` the text
    ends at the last whole sentence that fits. None when the body has no prose.

    The common body (a first paragraph of plain prose) is handled here with a few
    substring tests; anything else goes to :func:`_excerpt_blocks`.
    """
    end = body.find("\n\n")
    para = body if end < 0 else body[:end]
    if (
        para[:1] in _ODD_FIRST
        or para[-1:] in ": \t"
        or ("\n" in para and _ODD_INSIDE_RE.search(para) is not None)
        or "(cherry picked from commit" in para
    ):
        return _excerpt_blocks(body)
    if ":" in para:
        lines = [line for line in para.split("\n") if line.strip()]
        if all(_TRAILER_LINE_RE.match(line) for line in lines) or _BREAKING_RE.match(lines[0]):
            # Trailers and footers close a message: prose after them is rare.
            return None if end < 0 else _excerpt_blocks(body[end + 2 :])
    # Lines joined by single spaces, as ``" ".join(para.split())`` gives. When the only
    # whitespace is single spaces and newlines (every other whitespace character is not
    # printable), replacing the newlines gives the same text without a list of words.
    text = para.replace("\n", " ")
    if not text.isprintable() or "  " in text or text[:1] == " " or text[-1:] == " ":
        text = " ".join(para.split())
    if not text:
        return None
    return text if len(text) <= MAX_PARAGRAPH_CHARS else _capped(text)


def _capped(text: str) -> str:
    """``text`` within ``MAX_PARAGRAPH_CHARS``: cut after its last whole sentence that fits
    (a single sentence longer than that is cut at a word, with ``…``)."""
    if len(text) <= MAX_PARAGRAPH_CHARS:
        return text
    head = text[: MAX_PARAGRAPH_CHARS - 1]
    ends = [m.end() for m in _SENTENCE_END_RE.finditer(head)]
    if ends and ends[-1] >= MAX_PARAGRAPH_CHARS // 4:
        return head[: ends[-1]]
    space = head.rfind(" ")
    if space >= MAX_PARAGRAPH_CHARS // 2:
        head = head[:space]
    return head.rstrip() + "…"


def _body_blocks(body: str) -> list[tuple[str, list[str]]]:
    """The body as blocks ``(kind, lines)``: ``text`` (a paragraph), ``list`` (list items,
    one line each, markers removed, continuation lines joined) or ``other`` (code, quote,
    table, heading, separator, comment, trailers: never an excerpt). A paragraph whose
    lines turn into list items becomes a ``text`` block followed by a ``list`` block.
    ``(cherry picked from commit ...)`` lines are dropped."""
    blocks: list[tuple[str, list[str]]] = []
    lines: list[str] = []
    fence = ""
    comment = False

    def flush() -> None:
        if lines:
            blocks.extend(_classify(lines))
            lines.clear()

    for raw in body.split("\n"):
        line = raw.rstrip()
        stripped = line.lstrip()
        if fence:
            if stripped.startswith(fence):
                fence = ""
            continue
        if comment:
            comment = "-->" not in line
            continue
        if stripped.startswith(("```", "~~~")):
            flush()
            blocks.append(("other", []))
            fence = stripped[:3]
            continue
        if stripped.startswith("<!--"):
            flush()
            blocks.append(("other", []))
            comment = "-->" not in stripped[4:]
            continue
        if not stripped:
            flush()
            continue
        if stripped.startswith("(cherry picked from commit") and _CHERRY_PICK_RE.match(line):
            continue
        lines.append(line)
    flush()
    return blocks


def _classify(lines: list[str]) -> list[tuple[str, list[str]]]:
    first = lines[0]
    if (
        first[:4] == "    "
        or first[:1] in (">", "|", "\t")
        or _SEPARATOR_RE.fullmatch(first)
        or _BREAKING_RE.match(first)
        or all(_TRAILER_LINE_RE.match(line) for line in lines)
    ):
        return [("other", [])]
    while lines and _HEADING_RE.match(lines[0]):
        lines = lines[1:]
    prose: list[str] = []
    items: list[str] = []
    for line in lines:
        item = _LIST_ITEM_RE.fullmatch(line)
        if item is not None:
            items.append(item.group("text").strip())
        elif items:
            items[-1] += " " + line.strip()  # a continuation line of the item
        else:
            prose.append(line.strip())
    out: list[tuple[str, list[str]]] = []
    if prose:
        out.append(("text", prose))
    if items:
        out.append(("list", items))
    return out or [("other", [])]


def _excerpt_blocks(body: str) -> str | None:
    """:func:`_excerpt` for a body whose first paragraph is not plain prose."""
    blocks = _body_blocks(body)
    # GitHub's squash merge lists the squashed commits (``* subject``), each followed by its
    # body: only the first commit's body may describe the whole change.
    squash = body.startswith("* ")
    lists = 0
    for i, (kind, lines) in enumerate(blocks):
        if kind == "list":
            lists += 1
            if squash and lists > 1:
                break
        if kind != "text":
            continue
        text = " ".join(lines)
        if "(cherry picked from commit" in text:  # one written inside a line of text
            text = _CHERRY_PICK_INLINE_RE.sub(" ", text)
        text = " ".join(text.split())
        if not text:
            continue
        if not text.endswith(":"):
            return _capped(text)
        # An introduction: complete it with a short list, or keep the sentences before it.
        after = blocks[i + 1] if i + 1 < len(blocks) else None
        if after is not None and after[0] == "list":
            items = [item.rstrip(" ;,.") for item in after[1]]
            if (
                len(items) <= _INLINE_LIST_ITEMS
                and all(0 < len(item) <= _INLINE_LIST_ITEM_CHARS for item in items)
                and sum(map(len, items)) <= _INLINE_LIST_CHARS
            ):
                return _capped(f"{text} {', '.join(items)}.")
        ends = [m.end() for m in _SENTENCE_END_RE.finditer(text)]
        if ends:
            return _capped(text[: ends[-1]])
    return None


def _release_note(body: str) -> tuple[str | None, bool]:
    """``(text, is_none)`` from a ``Release-Note:`` trailer or a ```release-note fence."""
    lines = body.split("\n")
    for i, line in enumerate(lines):
        match = _RELEASE_NOTE_RE.match(line)
        if match is None:
            continue
        parts = [match.group(1).strip()]
        # Continuation: following lines up to a blank line or the next trailer.
        for follow in lines[i + 1 :]:
            stripped = follow.strip()
            if not stripped or _TRAILER_LINE_RE.match(follow) or _BREAKING_RE.match(follow):
                break
            parts.append(stripped)
        text = " ".join(p for p in parts if p)
        return _note_value(text)
    fence = _RELEASE_NOTE_FENCE_RE.search(body)
    if fence is not None:
        text = " ".join(line.strip() for line in fence.group("text").splitlines() if line.strip())
        return _note_value(text)
    return None, False


def _note_value(text: str) -> tuple[str | None, bool]:
    if not text:
        return None, False
    if text.lower().rstrip(".") in _NONE_NOTES:
        return None, True
    if len(text) > MAX_RELEASE_NOTE_CHARS:
        text = text[: MAX_RELEASE_NOTE_CHARS - 1].rstrip() + "…"
    return text, False


def _breaking_description(body: str) -> str | None:
    match = _BREAKING_RE.search(body)
    if match is None:
        return None
    parts = [match.group("text").strip()]
    for follow in body[match.end() :].split("\n")[1:]:
        stripped = follow.strip()
        if not stripped or _TRAILER_LINE_RE.match(follow):
            break
        parts.append(stripped)
    text = " ".join(p for p in parts if p)
    if len(text) > MAX_PARAGRAPH_CHARS:
        text = text[: MAX_PARAGRAPH_CHARS - 1].rstrip() + "…"
    return text


# A line longer than this is reduced to its references at once (see ``_ref_lines``).
_REF_LINE_MAX = 1_000


def _ref_lines(text: str, lines: list[str]) -> None:
    """Add to ``lines`` the lines of ``text`` that hold something shaped like a reference
    (``#12``, ``ABC-12``), in order: :attr:`ParsedCommit.issue_refs` runs the keyword
    pattern over them when it is read.

    The lines are found with ``str.find``, much cheaper than a regex scan. A very long
    line is kept as ``refs`` and the references it holds (which read back the same), so a
    huge message never keeps more than its references.
    """
    size = len(text)
    starts: list[int] = []
    for mark in "#-":
        pos = text.find(mark)
        while pos >= 0:
            nxt = pos + 1
            if nxt < size and text[nxt].isdecimal():  # ``\d``: any Unicode digit
                starts.append(text.rfind("\n", 0, pos) + 1)
                nxt = text.find("\n", nxt)
                if nxt < 0:
                    break
            pos = text.find(mark, nxt)
    if len(starts) > 1:
        starts = sorted(set(starts))
    for line_start in starts:
        line_end = text.find("\n", line_start)
        if line_end < 0:
            line_end = size
        if line_end - line_start <= _REF_LINE_MAX:
            lines.append(text[line_start:line_end])
            continue
        found: list[str] = []
        _line_refs(text, line_start, line_end, found)
        if found:
            lines.append("refs " + " ".join(found))


def _line_refs(text: str, start: int, end: int, found: list[str]) -> None:
    for match in _ISSUE_RE.finditer(text, start, end):
        for ref in _REF_RE.findall(match.group("refs")):
            if ref not in found:
                found.append(ref)


def parse_message(message: str) -> dict[str, object]:
    """Parse a commit message alone; the fields of :class:`ParsedCommit` that depend on it.

    Exposed for tests and tools; :func:`parse_commit` is the hot-path entry point.
    """
    commit = parse_commit("0" * 40, (), Person("", ""), "", message)
    return {name: getattr(commit, name) for name in FIELDS}


# Short strings that repeat on every commit (types, scopes) are shared, not stored once per
# commit: a bounded cache, so odd input cannot grow it without limit.
_SHARED: dict[str, str] = {}
_SHARED_MAX = 4096


def _shared(text: str) -> str:
    cached = _SHARED.get(text)
    if cached is None:
        if len(_SHARED) < _SHARED_MAX:
            _SHARED[text] = text
        return text
    return cached


def _type_scope_kind(raw_type: str, raw_scope: str | None) -> tuple[str, str | None, str]:
    """The shared lower-cased type, the shared scope (None when empty) and the kind."""
    type_ = _shared(raw_type.lower())
    if not raw_scope:
        return type_, None, _TYPE_TO_KIND.get(type_, "other")
    scope = _shared(raw_scope)
    kind = "deps" if scope.lower() in _DEPS_SCOPES else _TYPE_TO_KIND.get(type_, "other")
    return type_, scope, kind


# One Person per co-author, shared by all their ``Co-authored-by:`` lines (as the history
# stream shares one per author), so that the notes can tell people apart by object. Bounded.
_CO_AUTHORS: dict[tuple[str, str], Person] = {}
_CO_AUTHORS_MAX = 4096


def _co_author(name: str, email: str) -> Person:
    key = (name, email)
    person = _CO_AUTHORS.get(key)
    if person is None:
        person = Person(name, email)
        if len(_CO_AUTHORS) < _CO_AUTHORS_MAX:
            _CO_AUTHORS[key] = person
    return person


# What ``_CONVENTIONAL_RE`` makes of a subject is decided by the text before its first
# colon (``feat(order)!``), which repeats on nearly every commit: (type, scope, kind, bang)
# for each prefix seen, or None when the prefix is not conventional by itself. Bounded.
_PREFIX_RE = re.compile(
    r"\s*(?P<type>[A-Za-z][A-Za-z0-9_-]*)[ \t]*(?:\([ \t]*(?P<scope>[^()\r\n]*?)[ \t]*\))?"
    r"[ \t]*(?P<bang>!)?[ \t]*"
)
_PREFIXES: dict[str, tuple[str, str | None, str, bool] | None] = {}
_PREFIXES_MAX = 4096


def _conventional_prefix(prefix: str) -> tuple[str, str | None, str, bool] | None:
    match = _PREFIX_RE.fullmatch(prefix)
    known = None
    if match is not None:
        raw_type, raw_scope, raw_bang = match.group("type", "scope", "bang")
        known = (*_type_scope_kind(raw_type, raw_scope), raw_bang is not None)
    if len(_PREFIXES) < _PREFIXES_MAX:
        _PREFIXES[prefix] = known
    return known


def parse_commit(
    sha: str,
    parents: tuple[str, ...],
    author: Person,
    date: str,
    message: str,
) -> ParsedCommit:
    """Parse one commit. Never raises on odd input: empty, huge or mis-encoded messages.

    ``message`` is the raw message (``%B``) already decoded; callers decode with
    ``errors="replace"`` so that a non-UTF-8 message still yields a commit.

    This is the hot path (every commit of a 200,000-commit history): each rule runs only
    after a substring test says it can apply, and the body-dependent rules are skipped as a
    block for the many commits that have only a subject line.
    """
    if "\r" in message:
        message = message.replace("\r\n", "\n")
    # ``message.strip("\n")``, then the first line and the rest, by index: a huge message
    # is never copied whole (only the kept head and tail of its body are).
    start, end = 0, len(message)
    if message.startswith("\n"):
        start = end - len(message.lstrip("\n"))
    if message.endswith("\n", start):
        end = len(message.rstrip("\n")) if message.endswith("\n", start, end - 1) else end - 1
    newline = message.find("\n", start, end)
    if newline < 0:
        header, body = message[start:end].strip(), ""
    else:
        header = message[start:newline].strip()
        begin = newline + 1
        while message.startswith("\n", begin):  # blank lines after the header
            begin += 1
        if end - begin > _SCAN_LIMIT:
            body = message[begin : begin + _SCAN_KEEP] + "\n\n" + message[end - _SCAN_KEEP : end]
        else:
            body = message[begin:end]

    pr_number: int | None = None
    subject = header
    start = 0  # ``subject`` is ``header[start:start + len(subject)]`` while from_header
    from_header = True
    type_: str | None = None
    scope: str | None = None
    kind = "other"
    bang = False

    merge = (
        _MERGE_PR_RE.match(header) if header[:1] in "Mm" and header[:5].lower() == "merge" else None
    )
    if merge is not None:
        pr_number = int(merge.group(1))
        # GitHub puts the PR title in the first body line of a merge commit.
        title = body.split("\n", 1)[0].strip() if body else ""
        if title:
            subject = title
            from_header = False
    if subject.endswith(")"):
        # ``\s*\(\s*#(\d+)\s*\)\s*$`` by hand: the last "(" opens ``(#123)`` (``\s*`` is what
        # ``str.strip`` strips, ``\d+`` what ``str.isdecimal`` accepts).
        paren = subject.rfind("(")
        if paren >= 0:
            inner = subject[paren + 1 : -1].strip()
            if inner[:1] == "#" and inner[1:].isdecimal():
                if pr_number is None:
                    pr_number = int(inner[1:])
                subject = subject[:paren].rstrip()

    colon = subject.find(":")
    if colon >= 0:
        prefix = subject[:colon]
        try:
            known = _PREFIXES[prefix]
        except KeyError:
            known = _conventional_prefix(prefix)
        if known is not None:
            # ``[ \t]*(?P<desc>\S.*)`` after the colon, without the regex.
            desc = subject[colon + 1 :].lstrip(" \t")
            if desc and not desc[0].isspace():
                type_, scope, kind, bang = known
                start += len(subject) - len(desc)
                subject = desc.rstrip()
        else:  # the first colon may sit inside the scope: ``feat(a:b): ...``
            conv = _CONVENTIONAL_RE.match(subject)
            if conv is not None:
                raw_type, raw_scope, raw_bang, desc = conv.group("type", "scope", "bang", "desc")
                type_, scope, kind = _type_scope_kind(raw_type, raw_scope)
                bang = raw_bang is not None
                start += conv.start("desc")
                subject = desc.rstrip()
    if not subject:
        subject = header or "(no commit message)"
        start, from_header = 0, bool(header)

    breaking_description: str | None = None
    co_authors: tuple[Person, ...] = ()
    release_note: str | None = None
    release_note_none = False
    reverts: str | None = None
    picked: tuple[str, ...] = ()
    skip_changelog = False
    paragraph: str | None = None
    ref_lines: list[str] = []
    if "#" in subject or "-" in subject:  # cheap guard: every reference has one
        # The subject, not the header: a squash ``(#123)`` or ``Merge pull request #123``
        # is the PR, not an issue reference.
        _ref_lines(subject, ref_lines)

    if body:
        lower = body.lower()
        if pr_number is None and "merge request" in lower:
            mr = _GITLAB_MR_RE.search(body)
            if mr is not None:
                pr_number = int(mr.group(1))
        if "breaking" in lower:
            breaking_description = _breaking_description(body)
        if "co-authored-by" in lower:
            co_authors = tuple(
                _co_author(m.group("name").strip() or m.group("email"), m.group("email").strip())
                for m in _CO_AUTHOR_RE.finditer(body)
            )
        if "release" in lower:
            release_note, release_note_none = _release_note(body)
        if "reverts commit" in lower:
            rev = _REVERT_BODY_RE.search(body)
            if rev is not None:
                reverts = rev.group(1).lower()
        if "cherry picked from" in lower:
            picked = tuple(sha.lower() for sha in _CHERRY_PICK_RE.findall(body))
        if "[" in message:
            low_header = header.lower()
            if (
                "changelog" in lower
                or "changelog" in low_header
                or "release" in low_header
                or "release" in lower
            ):
                skip_changelog = _SKIP_RE.search(message) is not None
        if "#" in body or "-" in body:
            _ref_lines(body, ref_lines)
        if merge is None:
            paragraph = _excerpt(body)
        elif "\n\n" in body:
            paragraph = _excerpt(body.split("\n\n", 1)[1])
    elif "[" in header:
        low_header = header.lower()
        if "changelog" in low_header or "release" in low_header:
            skip_changelog = _SKIP_RE.search(message) is not None

    breaking = bang or breaking_description is not None
    if bang and breaking_description is None:
        breaking_description = subject

    return ParsedCommit(
        sha,
        parents,
        author,
        date,
        _span(header, start, start + len(subject)) if from_header else subject,
        header,
        type_,
        kind,
        scope,
        breaking,
        breaking_description,
        paragraph,
        pr_number,
        "\n".join(ref_lines) if ref_lines else "",
        co_authors,
        release_note,
        release_note_none,
        skip_changelog,
        reverts,
        len(parents) > 1,
        picked,
    )
