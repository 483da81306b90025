"""The commit parser as it was before its hot path was tuned: a reference to compare with.

Only the functions that the tuning rewrote are kept here (``_issue_refs``,
``parse_message``, ``parse_commit``); the dataclasses, patterns and the helpers the tuning
left alone are imported from :mod:`release_notes.commits`, so the comparison in
``test_parser_equivalence.py`` is about the rewritten code. :class:`ParsedCommit` is the
plain dataclass it returned (the package's stores the subject as bounds in the header).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from release_notes.commits import (
    _CHERRY_PICK_RE,
    _CO_AUTHOR_RE,
    _CONVENTIONAL_RE,
    _GITLAB_MR_RE,
    _ISSUE_RE,
    _MERGE_PR_RE,
    _REF_RE,
    _REVERT_BODY_RE,
    _SCAN_KEEP,
    _SCAN_LIMIT,
    _SKIP_RE,
    Person,
    _breaking_description,
    _excerpt,
    _release_note,
    kind_for,
)

# Rules the tuned parser no longer needs as regexes, kept here as they were.
_SQUASH_PR_RE = re.compile(r"\s*\(\s*#(\d+)\s*\)\s*$")
_HASH_DIGIT_RE = re.compile(r"#\d")
_DASH_DIGIT_RE = re.compile(r"-\d")


@dataclass(slots=True)
class ParsedCommit:
    sha: str
    parents: tuple[str, ...]
    author: Person
    date: str
    subject: str
    header: str
    type: str | None
    kind: str
    scope: str | None
    breaking: bool
    breaking_description: str | None
    body: str | None
    pr_number: int | None
    issue_refs: tuple[str, ...]
    co_authors: tuple[Person, ...]
    release_note: str | None
    release_note_none: bool
    skip_changelog: bool
    reverts: str | None
    is_merge: bool
    merge_branch: str | None
    cherry_picked_from: tuple[str, ...]


def _issue_refs(text: str) -> tuple[str, ...]:
    found: list[str] = []
    # The keyword pattern is costly over a whole message, so it runs only on the lines that
    # hold something shaped like a reference (``#12``, ``ABC-12``), found by literal scans.
    starts = [m.start() for m in _HASH_DIGIT_RE.finditer(text)] if "#" in text else []
    if "-" in text:
        starts.extend(m.start() for m in _DASH_DIGIT_RE.finditer(text))
        starts.sort()
    done_upto = -1
    for start in starts:
        if start < done_upto:
            continue
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", start)
        if line_end < 0:
            line_end = len(text)
        done_upto = line_end
        for match in _ISSUE_RE.finditer(text, line_start, line_end):
            for ref in _REF_RE.findall(match.group("refs")):
                if ref not in found:
                    found.append(ref)
    return tuple(found)


def parse_message(message: str) -> dict[str, object]:
    """Parse a commit message alone; the fields of :class:`ParsedCommit` that depend on it.

    Exposed for tests and tools; :func:`parse_commit` is the hot-path entry point.
    """
    commit = parse_commit("0" * 40, (), Person("", ""), "", message)
    return {name: getattr(commit, name) for name in ParsedCommit.__slots__}


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
    """
    if "\r" in message:
        message = message.replace("\r\n", "\n")
    message = message.strip("\n")
    newline = message.find("\n")
    if newline < 0:
        header, body = message.strip(), ""
    else:
        header, body = message[:newline].strip(), message[newline + 1 :].strip("\n")
    if len(body) > _SCAN_LIMIT:
        body = body[:_SCAN_KEEP] + "\n\n" + body[-_SCAN_KEEP:]
    lower = body.lower()
    is_merge = len(parents) > 1

    pr_number: int | None = None
    merge_branch: str | None = None
    subject = header
    type_: str | None = None
    scope: str | None = None
    bang = False

    merge = _MERGE_PR_RE.match(header) if header[:5].lower() == "merge" else None
    if merge is not None:
        pr_number = int(merge.group(1))
        merge_branch = merge.group(2)
        # GitHub puts the PR title in the first body line of a merge commit.
        title = body.split("\n", 1)[0].strip() if body else ""
        if title:
            subject = title
    squash = _SQUASH_PR_RE.search(subject) if subject.endswith(")") else None
    if squash is not None:
        if pr_number is None:
            pr_number = int(squash.group(1))
        subject = subject[: squash.start()]
    if pr_number is None and "merge request" in lower:
        mr = _GITLAB_MR_RE.search(body)
        if mr is not None:
            pr_number = int(mr.group(1))

    if ":" in subject:
        conv = _CONVENTIONAL_RE.match(subject)
        if conv is not None:
            type_ = conv.group("type").lower()
            raw_scope = conv.group("scope")
            scope = raw_scope or None
            bang = conv.group("bang") is not None
            subject = conv.group("desc").rstrip()
    if not subject:
        subject = header or "(no commit message)"

    breaking_description: str | None = None
    if "breaking" in lower:
        breaking_description = _breaking_description(body)
    breaking = bang or breaking_description is not None
    if bang and breaking_description is None:
        breaking_description = subject

    co_authors: tuple[Person, ...] = ()
    if "co-authored-by" in lower:
        co_authors = tuple(
            Person(m.group("name").strip() or m.group("email"), m.group("email").strip())
            for m in _CO_AUTHOR_RE.finditer(body)
        )

    release_note: str | None = None
    release_note_none = False
    if "release" in lower:
        release_note, release_note_none = _release_note(body)

    reverts: str | None = None
    if "reverts commit" in lower:
        rev = _REVERT_BODY_RE.search(body)
        if rev is not None:
            reverts = rev.group(1).lower()

    cherry_picked_from = tuple(sha.lower() for sha in _CHERRY_PICK_RE.findall(body))

    skip_changelog = False
    if "[" in message:
        low_header = header.lower()
        if (
            "changelog" in lower
            or "changelog" in low_header
            or "release" in low_header
            or "release" in lower
        ):
            skip_changelog = _SKIP_RE.search(message) is not None

    issue_refs: tuple[str, ...] = ()
    if "#" in message or "-" in message:  # cheap guard: every reference has one
        # The subject, not the header: a squash ``(#123)`` or ``Merge pull request #123``
        # is the PR, not an issue reference.
        issue_refs = _issue_refs(subject + "\n" + body if body else subject)

    paragraph = None
    if body and merge is None:
        paragraph = _excerpt(body)
    elif merge is not None and "\n\n" in body:
        paragraph = _excerpt(body.split("\n\n", 1)[1])

    return ParsedCommit(
        sha=sha,
        parents=parents,
        author=author,
        date=date,
        subject=subject,
        header=header,
        type=type_,
        kind=kind_for(type_, scope),
        scope=scope,
        breaking=breaking,
        breaking_description=breaking_description,
        body=paragraph,
        pr_number=pr_number,
        issue_refs=issue_refs,
        co_authors=co_authors,
        release_note=release_note,
        release_note_none=release_note_none,
        skip_changelog=skip_changelog,
        reverts=reverts,
        is_merge=is_merge,
        merge_branch=merge_branch,
        cherry_picked_from=cherry_picked_from,
    )
