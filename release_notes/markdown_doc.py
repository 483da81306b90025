"""One Markdown parse shared by the HTML preview and the Notion converter.

Pure: no I/O. The release note is parsed once with markdown-it-py (CommonMark plus GFM
tables, strikethrough and task lists); the same token stream is rendered to sanitized HTML
for the preview and walked by :mod:`release_notes.notion_blocks`, so what a reviewer sees is
what Notion gets.

Raw HTML in the source is *not* interpreted: ``<script>`` in a commit message is shown as
text in both the preview and Notion. The rendered HTML is additionally cleaned with nh3.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markdown_it.tree import SyntaxTreeNode
from mdit_py_plugins.tasklists import tasklists_plugin

__all__ = [
    "Document",
    "is_task_checkbox",
    "parse_markdown",
    "render_html",
    "task_checked",
]

_ALLOWED_TAGS = {
    "a",
    "blockquote",
    "br",
    "code",
    "del",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "img",
    "input",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "code": {"class"},
    "ol": {"start"},
    "ul": {"class"},
    "li": {"class"},
    "input": {"type", "checked", "disabled", "class"},
    "th": {"style"},
    "td": {"style"},
}
_URL_SCHEMES = {"http", "https", "mailto"}


def _new_parser() -> MarkdownIt:
    # html=False: raw HTML in commit messages is text, never markup.
    md = MarkdownIt("commonmark", {"html": False})
    md.enable(["table", "strikethrough"])
    md.use(tasklists_plugin)
    return md


_PARSER = _new_parser()


@dataclass
class Document:
    """A parsed Markdown document: the source, its tokens and the syntax tree over them."""

    source: str
    tokens: list[Token]
    env: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def tree(self) -> SyntaxTreeNode:
        """The block/inline syntax tree built from :attr:`tokens` (no re-parse)."""
        return SyntaxTreeNode(self.tokens)


def parse_markdown(text: str) -> Document:
    """Parse ``text`` once; both :func:`render_html` and the Notion converter consume it."""
    env: dict[str, Any] = {}
    tokens = _PARSER.parse(text, env)
    return Document(source=text, tokens=tokens, env=env)


def render_html(markdown: str | Document) -> str:
    """Render Markdown (or an already parsed :class:`Document`) to sanitized HTML.

    Links keep their ``href`` and get ``rel="noopener"``; only http, https and mailto URLs
    survive; scripts, event-handler attributes and unknown tags are removed.
    """
    doc = markdown if isinstance(markdown, Document) else parse_markdown(markdown)
    raw = _PARSER.renderer.render(doc.tokens, _PARSER.options, doc.env)
    return nh3.clean(
        raw,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener",
        filter_style_properties={"text-align"},
    )


def is_task_checkbox(node: SyntaxTreeNode) -> bool:
    """Whether an inline node is the checkbox the task-list plugin puts in front of an item."""
    return node.type == "html_inline" and "task-list-item-checkbox" in node.content


def task_checked(node: SyntaxTreeNode) -> bool:
    """Whether a task-list checkbox node is ticked."""
    return 'checked="checked"' in node.content
