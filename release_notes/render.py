"""Render :class:`~release_notes.notes.ReleaseNotes` as Markdown (Jinja) or as JSON data.

No git, no flask. The Markdown comes from ``templates/release_notes.md.j2``, which an app
may replace with its own template (``template = "..."`` in its config). Templates get the
notes object plus the filters ``md`` (escape text for inline Markdown), ``people`` (join
authors), ``ref`` (an item's PR and commit links) and ``dep_version`` (a dependency row's
``1.0 → 1.1``).

Commit text is untrusted: :func:`md_inline` backslash-escapes Markdown and HTML
characters outside code spans, so a message cannot inject raw HTML (``<script>``) or
break the list structure; text inside balanced backticks stays a code span, which
Markdown never interprets as HTML.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from release_notes.commits import ParsedCommit, Person
from release_notes.errors import NotesError
from release_notes.notes import DependencyUpdate, FilteredCommit, NoteItem, ReleaseNotes

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "DEFAULT_TEMPLATE",
    "iter_default_markdown",
    "iter_jinja_markdown",
    "iter_markdown",
    "load_template",
    "md_inline",
    "render_json",
    "render_markdown",
    "to_json_dict",
]

DEFAULT_TEMPLATE = Path(__file__).parent / "templates" / "release_notes.md.j2"
JSON_SCHEMA_VERSION = 1

_CODE_SPAN_RE = re.compile(r"(`+)([^`\n]|[^`\n].*?[^`\n])\1(?!`)")
_SPECIAL_RE = re.compile(r"([\\`*\[\]<>&|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
# Line starts that would turn inline text into a heading, quote or list.
_BLOCK_START_RE = re.compile(r"^(?:>|#{1,6}(?:\s|$)|[-+](?:\s|$))")
_ORDERED_START_RE = re.compile(r"^(\d{1,9})([.)])(?=\s|$)")
_SAFE_RE = re.compile(r"[\\`*\[\]<>&|~_]")


def _escape_plain(text: str) -> str:
    return _SPECIAL_RE.sub(r"\\\1", text) if _SAFE_RE.search(text) else text


_ANY_SPECIAL_RE = re.compile(r"[\\`*\[\]<>&|~_\n\r]")
_SPECIAL_BYTES = b"\\`*[]<>&|~_\n\r"
_SPECIAL_FIRST = frozenset("#>-+")


def md_inline(text: str | None) -> str:
    """Escape untrusted text for one line of inline Markdown (list item, heading)."""
    if not text:
        return ""
    # Most commit text needs nothing: one scan, then it is returned as it is. For ASCII
    # text the scan is ``bytes.translate`` deleting the special characters (a few times
    # faster than the regex on a paragraph): nothing deleted, nothing special.
    if (
        len(text.encode("ascii").translate(None, _SPECIAL_BYTES)) == len(text)
        if text.isascii()
        else _ANY_SPECIAL_RE.search(text) is None
    ):
        first = text[0]
        if first not in _SPECIAL_FIRST and not first.isdigit():
            return text
    return _md_inline_full(text)


def _md_inline_full(text: str) -> str:
    if not text:
        return ""
    if "\n" in text or "\r" in text:
        text = " ".join(text.split())
    if "`" in text:
        parts: list[str] = []
        pos = 0
        for match in _CODE_SPAN_RE.finditer(text):
            parts.append(_escape_plain(text[pos : match.start()]))
            parts.append(match.group(0))
            pos = match.end()
        parts.append(_escape_plain(text[pos:]))
        out = "".join(parts)
    else:
        out = _escape_plain(text)
    if _BLOCK_START_RE.match(out):
        out = "\\" + out
    elif out[:1].isdigit():
        out = _ORDERED_START_RE.sub(r"\1\\\2", out, count=1)
    return out


def _people(persons: Iterable[Person]) -> str:
    return ", ".join(md_inline(p.name or p.email) for p in persons)


def dependency_version(dep: DependencyUpdate | None) -> str:
    """The version cell of a dependency row: ``1.0 → 1.1``, ``→ 1.1`` or empty."""
    if dep is None or dep.new is None:
        return ""
    if dep.old is None:
        return f"→ {md_inline(dep.new)}"
    return f"{md_inline(dep.old)} → {md_inline(dep.new)}"


def item_ref(item: NoteItem) -> str:
    """``[#12](pr url), [`abc1234`](commit url)``: the links of an item (no URL: plain)."""
    short = item.commit.sha[:7]
    sha = f"[`{short}`]({item.commit_url})" if item.commit_url else f"`{short}`"
    if item.pr_number is None:
        return sha
    if item.pr_url:
        return f"[#{item.pr_number}]({item.pr_url}), {sha}"
    return f"#{item.pr_number}, {sha}"


_ENV: jinja2.Environment | None = None
_TEMPLATES: dict[Path, tuple[float, jinja2.Template]] = {}


def _environment() -> jinja2.Environment:
    global _ENV
    if _ENV is None:
        import jinja2  # imported on first render: the JSON path does not pay for it

        env = jinja2.Environment(
            autoescape=False,  # Markdown, not HTML: text is escaped by the ``md`` filter
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            undefined=jinja2.StrictUndefined,
        )
        env.filters["md"] = md_inline
        env.filters["people"] = _people
        env.filters["ref"] = item_ref
        env.filters["dep_version"] = dependency_version
        _ENV = env
    return _ENV


def load_template(path: Path | None = None) -> jinja2.Template:
    """The compiled template at ``path`` (default: the packaged one), cached per mtime."""
    import jinja2

    path = path or DEFAULT_TEMPLATE
    try:
        mtime = path.stat().st_mtime
        cached = _TEMPLATES.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise NotesError(f"cannot read template {path}: {reason}") from None
    try:
        template = _environment().from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise NotesError(f"invalid template {path}, line {exc.lineno}: {exc.message}") from None
    _TEMPLATES[path] = (mtime, template)
    return template


# sha256 of the packaged template the fast path below reproduces. If the file on disk is
# different (edited in place), Markdown comes from Jinja instead, so output never drifts.
_DEFAULT_TEMPLATE_SHA256 = "e8d5ac7e429f3932e8817d1a1a3ae22cec80fe7344576671138ccd06f054407c"
_FAST_OK: tuple[float, bool] | None = None


def _is_default(template: Path | None) -> bool:
    """True when ``template`` is the packaged one, unchanged: the fast path may render it."""
    global _FAST_OK
    if template is not None and template != DEFAULT_TEMPLATE:
        try:
            if template.resolve() != DEFAULT_TEMPLATE.resolve():
                return False
        except OSError:
            return False
    try:
        mtime = DEFAULT_TEMPLATE.stat().st_mtime
    except OSError:
        return False
    if _FAST_OK is None or _FAST_OK[0] != mtime:
        import hashlib

        digest = hashlib.sha256(DEFAULT_TEMPLATE.read_bytes()).hexdigest()
        _FAST_OK = (mtime, digest == _DEFAULT_TEMPLATE_SHA256)
    return _FAST_OK[1]


def _plural(count: int) -> str:
    return "" if count == 1 else "s"


def iter_default_markdown(notes: ReleaseNotes, chunk_items: int = 256) -> Iterator[str]:
    """The packaged template's output written directly (no Jinja), in chunks.

    Identical to rendering ``templates/release_notes.md.j2`` (a test compares both); about
    ten times faster on long histories. Used whenever the packaged template is in effect.
    """
    md = md_inline
    ref = item_ref
    out: list[str] = []
    append = out.append
    n_people = len(notes.contributors)
    version = md(notes.version)
    append(
        f"# Release {version}\n\n**{version}** · {notes.date} · {notes.commit_count} "
        f"commit{_plural(notes.commit_count)} · {notes.pr_count} PR{_plural(notes.pr_count)}"
        f" · {n_people} contributor{_plural(n_people)}\n"
    )
    if notes.from_ref:
        append(f"\nChanges from `{notes.from_ref}` to `{notes.to_ref}`.\n")
    append("\n## Breaking changes\n\n")
    for item in notes.breaking:
        c = item.commit
        append(f"- **{md(item.area)}**: {md(c.breaking_description or c.subject)} ({ref(item)})\n")
    if not notes.breaking:
        append("No breaking changes.\n")
    append("\n## For stores\n\n")
    for group in notes.for_stores:
        append(f"### {md(group.area)}\n\n")
        for item in group.items:
            append(f"- {md(item.commit.release_note)} ({ref(item)})\n")
        append("\n")
    if not notes.for_stores:
        append("No store-facing changes in this release.\n\n")
    yield "".join(out)
    out.clear()
    # By object id: the history stream shares one Person per author, alive all along.
    authors: dict[int, str] = {}
    for section in notes.sections:
        append(f"## {section.title}\n")
        if section.kind == "deps":
            # One row per update, no bodies (a bot's are links and version lists).
            n = section.count
            append(
                f"\n{n} dependency update{_plural(n)}\n\n"
                "| Dependency | Version | Links |\n|---|---|---|\n"
            )
            for item in notes.dependencies:
                flag = "**Breaking:** " if item.commit.breaking else ""
                dep = item.dependency
                name = md(dep.name) if dep is not None else md(item.commit.subject)
                append(f"| {flag}{name} | {dependency_version(dep)} | {ref(item)} |\n")
            append("\n")
            continue
        for group in section.groups:
            append(f"\n### {md(group.area)}\n\n")
            for item in group.items:
                c = item.commit
                if c.co_authors:
                    people = _people(item.authors)
                else:
                    people = authors.get(id(c.author))  # type: ignore[assignment]
                    if people is None:
                        people = authors[id(c.author)] = _people(item.authors)
                if item.commit_url is None and item.pr_number is not None and not item.pr_url:
                    links = f"#{item.pr_number}, `{c.sha[:7]}`"
                else:
                    links = ref(item)
                flag = "**Breaking:** " if c.breaking else ""
                line = f"- {flag}{md(c.subject)} ({links}) — {people}\n"
                if c.body:
                    line += f"\n  {md(c.body)}\n\n"
                append(line)
                if len(out) >= chunk_items:
                    yield "".join(out)
                    out.clear()
        append("\n")
    if notes.already_shipped:
        shipped_in = md(notes.shipped_in or "the previous release")
        append(f"## Already in {shipped_in}\n\n")
        for shipped in notes.already_shipped:
            item = shipped.item
            flag = "**Breaking:** " if item.commit.breaking else ""
            append(
                f"- {flag}{md(item.commit.subject)} ({ref(item)}) — already in {shipped_in} "
                f"as `{shipped.same_as[:7]}` ({shipped.how})\n"
            )
        append("\n")
    append("## Contributors\n\n")
    for person in notes.contributors:
        first = " (first contribution)" if person.first_time else ""
        append(f"- {md(person.name or person.email)}{first}\n")
    if not notes.contributors:
        append("No human contributors.\n")
    yield "".join(out)


def iter_markdown(notes: ReleaseNotes, template: Path | None = None) -> Iterator[str]:
    """The Markdown in chunks, for writing a large document without holding it whole."""
    if _is_default(template):
        yield from iter_default_markdown(notes)
        return
    yield from iter_jinja_markdown(notes, template)


def iter_jinja_markdown(notes: ReleaseNotes, template: Path | None = None) -> Iterator[str]:
    """The Markdown of ``template`` (default: the packaged one) rendered by Jinja."""
    import jinja2

    compiled = load_template(template)
    try:
        yield from compiled.generate(notes=notes)
    except jinja2.TemplateError as exc:
        raise NotesError(f"template {template or DEFAULT_TEMPLATE} failed: {exc}") from None


def render_markdown(notes: ReleaseNotes, template: Path | None = None) -> str:
    """The whole Markdown document."""
    # ``+=`` on a string nothing else references grows it in place (realloc), so the
    # document never exists twice, as it would with ``"".join`` of all its chunks (on a
    # 200,000-commit history that is ~70 MiB less peak memory).
    document = ""
    for chunk in iter_markdown(notes, template):
        document += chunk
    return document


def _person(p: Person) -> dict[str, str]:
    return {"name": p.name, "email": p.email}


def _commit_fields(c: ParsedCommit) -> dict[str, Any]:
    return {
        "sha": c.sha,
        "short_sha": c.sha[:7],
        "parents": list(c.parents),
        "date": c.date,
        "header": c.header,
        "subject": c.subject,
        "type": c.type,
        "scope": c.scope,
        "breaking": c.breaking,
        "breaking_description": c.breaking_description,
        "body": c.body,
        "issue_refs": list(c.issue_refs),
        "release_note": c.release_note,
        "author": _person(c.author),
        "co_authors": [_person(p) for p in c.co_authors],
        "is_merge": c.is_merge,
        "reverts": c.reverts,
        "cherry_picked_from": list(c.cherry_picked_from),
    }


def _item_dict(item: NoteItem) -> dict[str, Any]:
    data = _commit_fields(item.commit)
    data.update(
        kind=item.kind,
        area=item.area,
        pr_number=item.pr_number,
        pr_url=item.pr_url,
        commit_url=item.commit_url,
        authors=[_person(p) for p in item.authors],
        bot=item.bot,
        dependency=(
            {"name": dep.name, "from": dep.old, "to": dep.new}
            if (dep := item.dependency) is not None
            else None
        ),
    )
    return data


def _filtered_dict(f: FilteredCommit) -> dict[str, Any]:
    data = _commit_fields(f.commit)
    data.update(reason=f.reason, detail=f.detail, pr_number=f.commit.pr_number, same_as=f.same_as)
    return data


def to_json_dict(notes: ReleaseNotes) -> dict[str, Any]:
    """Plain data: every commit of the range once, in ``shown`` or ``filtered``."""
    return {
        "schema": JSON_SCHEMA_VERSION,
        "version": notes.version,
        "date": notes.date,
        "range": {
            "from": notes.from_ref,
            "to": notes.to_ref,
            "from_sha": notes.from_sha,
            "to_sha": notes.to_sha,
        },
        "shipped_in": notes.shipped_in,
        "counts": {
            "commits": notes.commit_count,
            "shown": len(notes.items),
            "filtered": len(notes.filtered),
            "prs": notes.pr_count,
            "contributors": len(notes.contributors),
            "breaking": len(notes.breaking),
            "dependencies": len(notes.dependencies),
            "already_shipped": len(notes.already_shipped),
        },
        "pr_numbers": list(notes.pr_numbers),
        "shown": [_item_dict(item) for item in notes.items],
        "filtered": [_filtered_dict(f) for f in notes.filtered],
        "contributors": [
            {"name": c.name, "email": c.email, "commits": c.commits, "first_time": c.first_time}
            for c in notes.contributors
        ],
    }


def render_json(notes: ReleaseNotes) -> str:
    import json

    return json.dumps(to_json_dict(notes), ensure_ascii=False, indent=1) + "\n"
