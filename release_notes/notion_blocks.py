"""Markdown document → Notion block objects (API version 2025-09-03), within Notion's limits.

Pure: no I/O. Works on the parse from :mod:`release_notes.markdown_doc`, the same one the
HTML preview is rendered from.

Limits respected here (a request over them is rejected by Notion):

* ``text.content`` of a rich-text item ≤ 2000 characters counted in UTF-16 code units
  (an emoji outside the BMP counts 2); a surrogate pair is never split.
* a rich-text array ≤ 100 items; longer text continues in the following block(s): another
  paragraph / code block after a paragraph, heading or code block, a child paragraph inside
  a list item, to-do or quote. Table cells over 100 items are flattened to plain text.
* a link URL ≤ 2000 characters, absolute http(s)/mailto only; otherwise the text stays and
  the link is dropped.

A paragraph that is only ``N dependency updates`` followed by a table (how the notes show
their dependency updates) becomes a toggle titled so, holding the table: the updates are
one click away and the page reads on past them.

The per-request limits (100 children, nesting depth, 1000 blocks, 500 KB) are the
publisher's job (:mod:`release_notes.notion`); blocks returned here carry their full,
arbitrarily deep ``children`` inside the type object, as in Notion's request shape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from markdown_it.tree import SyntaxTreeNode

from release_notes.markdown_doc import Document, is_task_checkbox, parse_markdown, task_checked

__all__ = [
    "MAX_LINK_URL",
    "MAX_RICH_TEXT_ITEMS",
    "MAX_TEXT_UNITS",
    "NOTION_CODE_LANGUAGES",
    "Block",
    "RichText",
    "block_children",
    "code_language",
    "count_blocks",
    "markdown_to_blocks",
    "normalize_text",
    "plain_text_of_blocks",
    "plain_text_of_markdown",
    "split_utf16",
    "utf16_len",
    "with_children",
]

Block = dict[str, Any]
RichText = dict[str, Any]

MAX_TEXT_UNITS = 2000
MAX_RICH_TEXT_ITEMS = 100
MAX_LINK_URL = 2000
# Keeps one block's rich text far below the 500 KB request limit even for 4-byte characters.
MAX_BLOCK_TEXT_BYTES = 64_000

NOTION_CODE_LANGUAGES = frozenset(
    {
        "abap",
        "abc",
        "agda",
        "arduino",
        "ascii art",
        "assembly",
        "bash",
        "basic",
        "bnf",
        "c",
        "c#",
        "c++",
        "clojure",
        "coffeescript",
        "coq",
        "css",
        "dart",
        "dhall",
        "diff",
        "docker",
        "ebnf",
        "elixir",
        "elm",
        "erlang",
        "f#",
        "flow",
        "fortran",
        "gherkin",
        "glsl",
        "go",
        "graphql",
        "groovy",
        "haskell",
        "hcl",
        "html",
        "idris",
        "java",
        "javascript",
        "json",
        "julia",
        "kotlin",
        "latex",
        "less",
        "lisp",
        "livescript",
        "llvm ir",
        "lua",
        "makefile",
        "markdown",
        "markup",
        "matlab",
        "mathematica",
        "mermaid",
        "nix",
        "notion formula",
        "objective-c",
        "ocaml",
        "pascal",
        "perl",
        "php",
        "plain text",
        "powershell",
        "prolog",
        "protobuf",
        "purescript",
        "python",
        "r",
        "racket",
        "reason",
        "ruby",
        "rust",
        "sass",
        "scala",
        "scheme",
        "scss",
        "shell",
        "smalltalk",
        "solidity",
        "sql",
        "swift",
        "toml",
        "typescript",
        "vb.net",
        "verilog",
        "vhdl",
        "visual basic",
        "webassembly",
        "xml",
        "yaml",
        "java/c/c++/c#",
    }
)

_LANGUAGE_ALIASES = {
    "": "plain text",
    "text": "plain text",
    "txt": "plain text",
    "plain": "plain text",
    "plaintext": "plain text",
    "py": "python",
    "python3": "python",
    "js": "javascript",
    "jsx": "javascript",
    "mjs": "javascript",
    "ts": "typescript",
    "tsx": "typescript",
    "sh": "shell",
    "zsh": "shell",
    "console": "shell",
    "shell-session": "shell",
    "yml": "yaml",
    "kt": "kotlin",
    "kts": "kotlin",
    "rb": "ruby",
    "rs": "rust",
    "cs": "c#",
    "csharp": "c#",
    "cpp": "c++",
    "cxx": "c++",
    "h": "c",
    "hpp": "c++",
    "objc": "objective-c",
    "objectivec": "objective-c",
    "dockerfile": "docker",
    "golang": "go",
    "tf": "hcl",
    "terraform": "hcl",
    "jsonc": "json",
    "json5": "json",
    "proto": "protobuf",
    "md": "markdown",
    "tex": "latex",
    "ps1": "powershell",
    "pwsh": "powershell",
    "patch": "diff",
    "make": "makefile",
    "gql": "graphql",
    "htm": "html",
    "svg": "xml",
    "fs": "f#",
    "fsharp": "f#",
    "vb": "visual basic",
    "wasm": "webassembly",
    "ml": "ocaml",
    "pl": "perl",
    "ex": "elixir",
    "exs": "elixir",
    "erl": "erlang",
    "hs": "haskell",
    "clj": "clojure",
    "scm": "scheme",
    "sol": "solidity",
    "postgresql": "sql",
    "mysql": "sql",
    "sqlite": "sql",
}

_ANNOTATIONS = ("bold", "italic", "strikethrough", "code")


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, as Notion counts ``text.content``."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def split_utf16(text: str, limit: int = MAX_TEXT_UNITS) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` UTF-16 units, never inside a pair.

    Python strings hold code points, so cutting between them can never separate the two
    halves of a surrogate pair; a code point beyond the BMP simply counts 2.
    """
    if limit < 2:
        raise ValueError("limit must be at least 2 UTF-16 units")
    pieces: list[str] = []
    start = 0
    units = 0
    for i, ch in enumerate(text):
        width = 2 if ord(ch) > 0xFFFF else 1
        if units + width > limit:
            pieces.append(text[start:i])
            start, units = i, 0
        units += width
    if start < len(text) or not pieces:
        pieces.append(text[start:])
    return [p for p in pieces if p] or [""]


def code_language(info: str) -> str:
    """Map a fence info string (``py``, ``TypeScript``, ``c++ {.x}``) to a Notion language."""
    word = info.strip().split(maxsplit=1)[0].lower() if info.strip() else ""
    word = word.strip("{}.")
    if word in NOTION_CODE_LANGUAGES:
        return word
    return _LANGUAGE_ALIASES.get(word, "plain text")


def _usable_url(url: str | None) -> str | None:
    if not url or len(url) > MAX_LINK_URL:
        return None
    lowered = url.lower()
    if lowered.startswith(("http://", "https://", "mailto:")):
        return url
    return None


@dataclass(frozen=True)
class _Style:
    bold: bool = False
    italic: bool = False
    strikethrough: bool = False
    code: bool = False
    link: str | None = None


def _text_item(content: str, style: _Style) -> RichText:
    text: dict[str, Any] = {"content": content}
    if style.link is not None:
        text["link"] = {"url": style.link}
    item: RichText = {"type": "text", "text": text}
    annotations = {name: True for name in _ANNOTATIONS if getattr(style, name)}
    if annotations:
        item["annotations"] = annotations
    return item


def _runs(nodes: Sequence[SyntaxTreeNode], style: _Style, out: list[tuple[str, _Style]]) -> None:
    for node in nodes:
        kind = node.type
        if kind == "text":
            out.append((node.content, style))
        elif kind == "code_inline":
            out.append(
                (
                    node.content,
                    replace(style, code=True),
                )
            )
        elif kind in ("softbreak",):
            out.append((" ", style))
        elif kind == "hardbreak":
            out.append(("\n", style))
        elif kind == "strong":
            _runs(node.children, replace(style, bold=True), out)
        elif kind == "em":
            _runs(node.children, replace(style, italic=True), out)
        elif kind == "s":
            _runs(node.children, replace(style, strikethrough=True), out)
        elif kind == "link":
            href = node.attrGet("href")
            url = _usable_url(str(href) if href is not None else None)
            _runs(node.children, replace(style, link=url), out)
        elif kind == "image":
            src = node.attrGet("src")
            url = _usable_url(str(src) if src is not None else None)
            _runs(node.children, replace(style, link=url or style.link), out)
        elif is_task_checkbox(node):
            continue
        elif node.children:
            _runs(node.children, style, out)
        elif node.content:
            out.append((node.content, style))


def inline_rich_text(
    inline: SyntaxTreeNode | None, *, strip_leading: bool = False
) -> list[RichText]:
    """Rich-text items for an ``inline`` node: merged runs, each split at 2000 UTF-16 units."""
    if inline is None:
        return []
    runs: list[tuple[str, _Style]] = []
    _runs(inline.children, _Style(), runs)
    merged: list[tuple[str, _Style]] = []
    for text, style in runs:
        if merged and merged[-1][1] == style:
            merged[-1] = (merged[-1][0] + text, style)
        elif text:
            merged.append((text, style))
    if strip_leading and merged:
        first_text, first_style = merged[0]
        merged[0] = (first_text.lstrip(" "), first_style)
    items: list[RichText] = []
    for text, style in merged:
        if not text:
            continue
        items.extend(_text_item(piece, style) for piece in split_utf16(text))
    return items


def plain_rich_text(text: str) -> list[RichText]:
    """Unannotated rich text for ``text``, split at 2000 UTF-16 units."""
    if not text:
        return []
    return [_text_item(piece, _Style()) for piece in split_utf16(text)]


def _rich_text_size(item: RichText) -> int:
    return len(str(item["text"]["content"]).encode("utf-8")) + 96


def chunk_rich_text(items: list[RichText]) -> list[list[RichText]]:
    """Cut a rich-text array into arrays of ≤ 100 items and a bounded byte size."""
    chunks: list[list[RichText]] = []
    current: list[RichText] = []
    size = 0
    for item in items:
        item_size = _rich_text_size(item)
        if current and (
            len(current) >= MAX_RICH_TEXT_ITEMS or size + item_size > MAX_BLOCK_TEXT_BYTES
        ):
            chunks.append(current)
            current, size = [], 0
        current.append(item)
        size += item_size
    if current or not chunks:
        chunks.append(current)
    return chunks


def _block(kind: str, body: dict[str, Any]) -> Block:
    return {"object": "block", "type": kind, kind: body}


def block_children(block: Mapping[str, Any]) -> list[Block]:
    """Children of a block, whether request-shaped (inside the type object) or read back."""
    kind = block.get("type")
    body = block.get(kind) if isinstance(kind, str) else None
    if isinstance(body, Mapping) and isinstance(body.get("children"), list):
        return list(body["children"])
    children = block.get("children")
    return list(children) if isinstance(children, list) else []


def with_children(block: Block, children: list[Block] | None) -> Block:
    """A shallow copy of ``block`` with ``children`` replaced (``None`` or ``[]`` removes them)."""
    kind = str(block["type"])
    body = {k: v for k, v in block[kind].items() if k != "children"}
    if children:
        body["children"] = children
    copy = {k: v for k, v in block.items() if k != "children"}
    copy[kind] = body
    return copy


def count_blocks(blocks: Iterable[Mapping[str, Any]]) -> int:
    """Number of blocks at every level."""
    return sum(1 + count_blocks(block_children(b)) for b in blocks)


# The line the notes put above their dependency table ("12 dependency updates"): in Notion
# the table goes inside a toggle with this title, so the page reads on past it.
_DEPENDENCY_TOGGLE_RE = re.compile(r"\d[\d,]* dependency updates?")


class _Converter:
    def blocks(self, nodes: Sequence[SyntaxTreeNode]) -> list[Block]:
        out: list[Block] = []
        i = 0
        while i < len(nodes):
            node = nodes[i]
            following = nodes[i + 1] if i + 1 < len(nodes) else None
            if following is not None and following.type == "table" and _is_toggle_title(node):
                title = chunk_rich_text(inline_rich_text(_inline_of(node)))[0]
                table = self.table(following)
                out.append(_block("toggle", {"rich_text": title, "children": [table]}))
                i += 2
                continue
            out.extend(self.block(node))
            i += 1
        return out

    def block(self, node: SyntaxTreeNode) -> list[Block]:
        kind = node.type
        if kind == "heading":
            level = min(int(node.tag[1:]), 3)
            chunks = chunk_rich_text(inline_rich_text(_inline_of(node)))
            first = _block(f"heading_{level}", {"rich_text": chunks[0]})
            return [first, *(_block("paragraph", {"rich_text": c}) for c in chunks[1:])]
        if kind == "paragraph":
            chunks = chunk_rich_text(inline_rich_text(_inline_of(node)))
            return [_block("paragraph", {"rich_text": c}) for c in chunks]
        if kind in ("bullet_list", "ordered_list"):
            return [self.list_item(item, kind) for item in node.children]
        if kind in ("fence", "code_block"):
            return self.code(node)
        if kind == "blockquote":
            return [self.container("quote", {}, node.children)]
        if kind == "hr":
            return [_block("divider", {})]
        if kind == "table":
            return [self.table(node)]
        if kind in ("html_block",):
            return [
                _block("paragraph", {"rich_text": c})
                for c in chunk_rich_text(plain_rich_text(node.content))
            ]
        return self.blocks(node.children)

    def container(
        self,
        kind: str,
        extra: dict[str, Any],
        children: Sequence[SyntaxTreeNode],
        *,
        task: bool = False,
    ) -> Block:
        """A block whose text is its first paragraph and whose children are the rest."""
        rest = list(children)
        rich: list[RichText] = []
        if rest and rest[0].type == "paragraph":
            rich = inline_rich_text(_inline_of(rest[0]), strip_leading=task)
            rest = rest[1:]
        chunks = chunk_rich_text(rich)
        overflow = [_block("paragraph", {"rich_text": c}) for c in chunks[1:]]
        body: dict[str, Any] = {"rich_text": chunks[0], **extra}
        nested = overflow + self.blocks(rest)
        if nested:
            body["children"] = nested
        return _block(kind, body)

    def list_item(self, item: SyntaxTreeNode, list_kind: str) -> Block:
        first_inline = _inline_of(item.children[0]) if item.children else None
        if (
            first_inline is not None
            and first_inline.children
            and is_task_checkbox(first_inline.children[0])
        ):
            checked = task_checked(first_inline.children[0])
            return self.container("to_do", {"checked": checked}, item.children, task=True)
        kind = "bulleted_list_item" if list_kind == "bullet_list" else "numbered_list_item"
        return self.container(kind, {}, item.children)

    def code(self, node: SyntaxTreeNode) -> list[Block]:
        text = node.content[:-1] if node.content.endswith("\n") else node.content
        language = code_language(node.info if node.type == "fence" else "")
        chunks = chunk_rich_text(plain_rich_text(text))
        return [_block("code", {"rich_text": c, "language": language}) for c in chunks]

    def table(self, node: SyntaxTreeNode) -> Block:
        rows: list[list[list[RichText]]] = []
        for section in node.children:  # thead, tbody
            for tr in section.children:
                rows.append([_cell_rich_text(cell) for cell in tr.children])
        width = max((len(r) for r in rows), default=1) or 1
        row_blocks = [
            _block("table_row", {"cells": (cells + [[]] * width)[:width]}) for cells in rows
        ]
        return _block(
            "table",
            {
                "table_width": width,
                "has_column_header": True,
                "has_row_header": False,
                "children": row_blocks,
            },
        )


def _is_toggle_title(node: SyntaxTreeNode) -> bool:
    """A paragraph that is only ``N dependency updates`` (the notes' dependency table)."""
    if node.type != "paragraph":
        return False
    inline = _inline_of(node)
    return inline is not None and bool(
        _DEPENDENCY_TOGGLE_RE.fullmatch(_inline_plain(inline).strip())
    )


def _inline_of(node: SyntaxTreeNode) -> SyntaxTreeNode | None:
    for child in node.children:
        if child.type == "inline":
            return child
    return None


def _cell_rich_text(cell: SyntaxTreeNode) -> list[RichText]:
    items = inline_rich_text(_inline_of(cell))
    if len(items) <= MAX_RICH_TEXT_ITEMS:
        return items
    # A cell cannot continue into another block: keep all the text, drop the styling.
    flat = plain_rich_text("".join(str(i["text"]["content"]) for i in items))
    return flat[:MAX_RICH_TEXT_ITEMS]


def markdown_to_blocks(markdown: str | Document) -> list[Block]:
    """Convert Markdown (or a parsed :class:`Document`) to Notion block objects."""
    doc = markdown if isinstance(markdown, Document) else parse_markdown(markdown)
    return _Converter().blocks(doc.tree.children)


# --- plain text, to compare what Notion stores with the source --------------------------


def _rich_plain(items: Iterable[Mapping[str, Any]]) -> str:
    parts: list[str] = []
    for item in items:
        if "plain_text" in item:
            parts.append(str(item["plain_text"]))
        else:
            parts.append(str(item.get("text", {}).get("content", "")))
    return "".join(parts)


def _block_lines(block: Mapping[str, Any]) -> Iterator[str]:
    kind = str(block.get("type"))
    body = block.get(kind)
    body = body if isinstance(body, Mapping) else {}
    if kind == "table_row":
        yield "\t".join(_rich_plain(cell) for cell in body.get("cells", []))
    elif "rich_text" in body:
        yield _rich_plain(body["rich_text"])
    for child in block_children(block):
        yield from _block_lines(child)


def plain_text_of_blocks(blocks: Iterable[Mapping[str, Any]]) -> str:
    """The text of Notion blocks (request-shaped or read back), one line per block."""
    lines: list[str] = []
    for block in blocks:
        lines.extend(_block_lines(block))
    return "\n".join(lines)


def _inline_plain(node: SyntaxTreeNode) -> str:
    parts: list[str] = []
    for child in node.children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type == "softbreak":
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
        elif is_task_checkbox(child):
            continue
        elif child.children:
            parts.append(_inline_plain(child))
        else:
            parts.append(child.content)
    return "".join(parts)


def _markdown_lines(node: SyntaxTreeNode) -> Iterator[str]:
    kind = node.type
    if kind == "inline":
        yield (
            _inline_plain(node).lstrip(" ") if _starts_with_checkbox(node) else _inline_plain(node)
        )
    elif kind in ("fence", "code_block"):
        yield node.content[:-1] if node.content.endswith("\n") else node.content
    elif kind == "html_block":
        yield node.content
    elif kind == "tr":
        yield "\t".join(_inline_plain(c.children[0]) if c.children else "" for c in node.children)
    else:
        for child in node.children:
            yield from _markdown_lines(child)


def _starts_with_checkbox(inline: SyntaxTreeNode) -> bool:
    return bool(inline.children) and is_task_checkbox(inline.children[0])


def plain_text_of_markdown(markdown: str | Document) -> str:
    """The text of a Markdown document, read straight from the parse (not via the converter)."""
    doc = markdown if isinstance(markdown, Document) else parse_markdown(markdown)
    return "\n".join(_markdown_lines(doc.tree))


def normalize_text(text: str) -> str:
    """``text`` without whitespace: block boundaries and line breaks are layout, not content.

    A long paragraph that continues in a second block gains a block boundary that the source
    does not have, so text is compared with all whitespace removed.
    """
    return "".join(text.split())


def blocks_json_size(blocks: Sequence[Block]) -> int:
    """Bytes the blocks take in a request body, encoded as httpx encodes JSON."""
    return len(json.dumps(blocks, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
