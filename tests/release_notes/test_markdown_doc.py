import pytest

from release_notes import markdown_doc
from release_notes.markdown_doc import Document, parse_markdown, render_html
from release_notes.notion_blocks import markdown_to_blocks

# (markdown, fragment that must appear in the sanitized HTML)
RENDERED = [
    ("# Title", "<h1>Title</h1>"),
    ("**bold** *it* `code` ~~gone~~", "<strong>bold</strong>"),
    ("~~gone~~", "<s>gone</s>"),
    ("[docs](https://example.com/a)", '<a href="https://example.com/a" rel="noopener">docs</a>'),
    ("- [x] done", 'checked="checked"'),
    ("- [ ] todo", 'type="checkbox"'),
    ("| a | b |\n|---|---|\n| 1 | 2 |", "<td>1</td>"),
    ("```python\nprint(1)\n```", '<code class="language-python">print(1)'),
    ("> quoted", "<blockquote>"),
    ("---", "<hr>"),
]

# (markdown, fragment that must NOT appear): commit messages are text, never markup
DANGEROUS = [
    ("<script>alert(1)</script>", "<script"),
    ("<img src=x onerror=alert(1)>", "<img"),
    ('<a href="javascript:alert(1)">x</a>', "<a href"),
    ("[x](javascript:alert(1))", 'href="javascript'),
    ('<div onclick="steal()">hi</div>', "<div"),
    ("![pic](javascript:alert(1))", 'javascript:alert(1)"'),
]


@pytest.mark.parametrize(("markdown", "fragment"), RENDERED)
def test_render_html_keeps_markup(markdown: str, fragment: str) -> None:
    assert fragment in render_html(markdown)


@pytest.mark.parametrize(("markdown", "forbidden"), DANGEROUS)
def test_render_html_never_lets_html_through(markdown: str, forbidden: str) -> None:
    assert forbidden not in render_html(markdown)


def test_script_in_commit_message_is_shown_as_text() -> None:
    html = render_html("Fix <script>alert(1)</script> in the POS")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_parse_once_feeds_html_and_notion(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real_parse = markdown_doc._PARSER.parse

    def counting_parse(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return real_parse(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(markdown_doc._PARSER, "parse", counting_parse)
    doc = parse_markdown("# v1\n\n- **a**\n- b\n")
    html = render_html(doc)
    blocks = markdown_to_blocks(doc)
    assert len(calls) == 1
    assert isinstance(doc, Document)
    assert "<strong>a</strong>" in html
    assert [b["type"] for b in blocks] == ["heading_1", "bulleted_list_item", "bulleted_list_item"]


def test_document_and_string_render_the_same() -> None:
    source = "## Fixes\n\n1. one\n2. two\n"
    assert render_html(parse_markdown(source)) == render_html(source)
