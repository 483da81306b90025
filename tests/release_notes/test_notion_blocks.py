from typing import Any

import pytest

from release_notes.notion_blocks import (
    MAX_RICH_TEXT_ITEMS,
    MAX_TEXT_UNITS,
    Block,
    block_children,
    code_language,
    count_blocks,
    markdown_to_blocks,
    normalize_text,
    plain_text_of_blocks,
    plain_text_of_markdown,
    split_utf16,
    utf16_len,
)


def body(block: Block) -> dict[str, Any]:
    return dict(block[block["type"]])


def texts(block: Block) -> str:
    return "".join(i["text"]["content"] for i in body(block)["rich_text"])


def all_blocks(blocks: list[Block]) -> list[Block]:
    out = []
    for block in blocks:
        out.append(block)
        out.extend(all_blocks(block_children(block)))
    return out


def all_rich_text(blocks: list[Block]) -> list[list[dict[str, Any]]]:
    arrays = []
    for block in all_blocks(blocks):
        b = body(block)
        if "rich_text" in b:
            arrays.append(b["rich_text"])
        arrays.extend(b.get("cells", []))
    return arrays


# (markdown, [(block type, text)]) for the top-level blocks
BLOCKS = [
    ("# One", [("heading_1", "One")]),
    ("## Two", [("heading_2", "Two")]),
    ("### Three", [("heading_3", "Three")]),
    ("#### Four", [("heading_3", "Four")]),
    ("###### Six", [("heading_3", "Six")]),
    ("plain words", [("paragraph", "plain words")]),
    ("line one\nline two", [("paragraph", "line one line two")]),
    ("hard  \nbreak", [("paragraph", "hard\nbreak")]),
    ("- a\n- b", [("bulleted_list_item", "a"), ("bulleted_list_item", "b")]),
    ("1. a\n2. b", [("numbered_list_item", "a"), ("numbered_list_item", "b")]),
    ("- [x] shipped\n- [ ] pending", [("to_do", "shipped"), ("to_do", "pending")]),
    ("```python\nprint(1)\n```", [("code", "print(1)")]),
    ("    indented code", [("code", "indented code")]),
    ("> a quote", [("quote", "a quote")]),
    ("---", [("divider", "")]),
    ("<b>raw</b> html", [("paragraph", "<b>raw</b> html")]),
    ("![logo](https://x.test/l.png)", [("paragraph", "logo")]),
]


@pytest.mark.parametrize(("markdown", "expected"), BLOCKS)
def test_block_types(markdown: str, expected: list[tuple[str, str]]) -> None:
    blocks = markdown_to_blocks(markdown)
    got = [(b["type"], texts(b) if "rich_text" in body(b) else "") for b in blocks]
    assert got == expected


def test_to_do_checked() -> None:
    blocks = markdown_to_blocks("- [x] shipped\n- [ ] pending")
    assert [body(b)["checked"] for b in blocks] == [True, False]


def test_divider_shape() -> None:
    assert markdown_to_blocks("---") == [{"object": "block", "type": "divider", "divider": {}}]


# (markdown, [(text, annotations, link url)])
ANNOTATED = [
    ("**b**", [("b", {"bold": True}, None)]),
    ("*i*", [("i", {"italic": True}, None)]),
    ("`c`", [("c", {"code": True}, None)]),
    ("~~s~~", [("s", {"strikethrough": True}, None)]),
    ("[l](https://e.test/x)", [("l", None, "https://e.test/x")]),
    ("***bi***", [("bi", {"bold": True, "italic": True}, None)]),
    ("**[bl](https://e.test)**", [("bl", {"bold": True}, "https://e.test")]),
    ("[`cl`](mailto:a@b.test)", [("cl", {"code": True}, "mailto:a@b.test")]),
    ("a **b** c", [("a ", None, None), ("b", {"bold": True}, None), (" c", None, None)]),
    ("[rel](/docs/x)", [("rel", None, None)]),
    ("[anchor](#top)", [("anchor", None, None)]),
]


@pytest.mark.parametrize(("markdown", "expected"), ANNOTATED)
def test_annotations(markdown: str, expected: list[tuple[str, Any, Any]]) -> None:
    (block,) = markdown_to_blocks(markdown)
    got = [
        (
            item["text"]["content"],
            item.get("annotations"),
            (item["text"].get("link") or {}).get("url"),
        )
        for item in body(block)["rich_text"]
    ]
    assert got == expected


def test_link_url_over_2000_degrades_to_text() -> None:
    url = "https://example.test/" + "a" * 2000
    (block,) = markdown_to_blocks(f"[long]({url}) and [short](https://e.test)")
    items = body(block)["rich_text"]
    assert items[0]["text"] == {"content": "long and "}  # merged with the plain text after it
    assert items[-1]["text"]["link"] == {"url": "https://e.test"}


# (text, expected piece lengths in code points)
SPLITS = [
    ("a" * 2000, [2000]),
    ("a" * 2001, [2000, 1]),
    ("a" * 4500, [2000, 2000, 500]),
    ("😀" * 1000, [1000]),
    ("😀" * 1001, [1000, 1]),
    ("a" + "😀" * 1000, [1 + 999, 1]),
    ("漢" * 5000, [2000, 2000, 1000]),
    ("", [0]),
]


@pytest.mark.parametrize(("text", "lengths"), SPLITS)
def test_split_utf16(text: str, lengths: list[int]) -> None:
    pieces = split_utf16(text)
    assert [len(p) for p in pieces] == lengths
    assert "".join(pieces) == text
    for piece in pieces:
        assert utf16_len(piece) <= MAX_TEXT_UNITS
        encoded = piece.encode("utf-16-le")  # a split pair would not encode
        assert len(encoded) // 2 == utf16_len(piece)


def test_utf16_len_counts_astral_twice() -> None:
    assert utf16_len("a漢😀") == 4


@pytest.mark.parametrize("unit", ["x", "漢", "😀", "👨‍👩‍👧"])
def test_long_paragraph_is_split_under_the_limit(unit: str) -> None:
    text = unit * 3000
    (block,) = markdown_to_blocks(text)
    items = body(block)["rich_text"]
    assert len(items) > 1
    assert all(utf16_len(i["text"]["content"]) <= MAX_TEXT_UNITS for i in items)
    assert texts(block) == text


def test_more_than_100_rich_text_items_continue_in_next_paragraph() -> None:
    markdown = " ".join(f"**b{i}** p{i}" for i in range(70))  # 140 items
    blocks = markdown_to_blocks(markdown)
    assert [b["type"] for b in blocks] == ["paragraph", "paragraph"]
    assert all(len(body(b)["rich_text"]) <= MAX_RICH_TEXT_ITEMS for b in blocks)
    assert "".join(texts(b) for b in blocks) == markdown.replace("**", "")


def test_more_than_100_items_in_list_item_continue_as_child_paragraph() -> None:
    line = " ".join(f"`c{i}` t{i}" for i in range(80))
    (item,) = markdown_to_blocks(f"- {line}\n  - nested")
    assert item["type"] == "bulleted_list_item"
    kids = block_children(item)
    assert [k["type"] for k in kids] == ["paragraph", "bulleted_list_item"]
    assert texts(item) + texts(kids[0]) == line.replace("`", "")


def test_heading_overflow_continues_as_paragraph() -> None:
    title = " ".join(f"*w{i}*" for i in range(60))  # 119 items
    blocks = markdown_to_blocks(f"# {title}")
    assert [b["type"] for b in blocks] == ["heading_1", "paragraph"]


def test_huge_code_block_continues_in_next_code_block() -> None:
    code = "\n".join("x = '" + "😀" * 300 + "'" for _ in range(400))
    blocks = markdown_to_blocks(f"```py\n{code}\n```")
    assert {b["type"] for b in blocks} == {"code"}
    assert len(blocks) > 1
    assert "".join(texts(b) for b in blocks) == code
    assert all(body(b)["language"] == "python" for b in blocks)


def test_nested_lists_four_levels() -> None:
    markdown = "- l1\n  1. l2\n     - l3\n       - [x] l4\n- next"
    blocks = markdown_to_blocks(markdown)
    assert [b["type"] for b in blocks] == ["bulleted_list_item", "bulleted_list_item"]
    l2 = block_children(blocks[0])
    l3 = block_children(l2[0])
    l4 = block_children(l3[0])
    assert (l2[0]["type"], l3[0]["type"], l4[0]["type"]) == (
        "numbered_list_item",
        "bulleted_list_item",
        "to_do",
    )
    assert texts(l4[0]) == "l4" and body(l4[0])["checked"] is True
    assert count_blocks(blocks) == 5


def test_list_item_with_code_and_paragraph_children() -> None:
    markdown = "- head\n\n  more text\n\n  ```sh\n  ls\n  ```\n"
    (item,) = markdown_to_blocks(markdown)
    assert texts(item) == "head"
    assert [k["type"] for k in block_children(item)] == ["paragraph", "code"]


def test_quote_with_several_paragraphs() -> None:
    (quote,) = markdown_to_blocks("> first\n>\n> second\n")
    assert texts(quote) == "first"
    assert [texts(k) for k in block_children(quote)] == ["second"]


def test_table() -> None:
    markdown = "| Ver | *Note* |\n|---|:-:|\n| 1.0 | **big** |\n| 1.1 |\n"
    (table,) = markdown_to_blocks(markdown)
    assert table["type"] == "table"
    assert body(table)["table_width"] == 2
    assert body(table)["has_column_header"] is True
    rows = block_children(table)
    assert [r["type"] for r in rows] == ["table_row"] * 3
    cells = [[("".join(i["text"]["content"] for i in c)) for c in body(r)["cells"]] for r in rows]
    assert cells == [["Ver", "Note"], ["1.0", "big"], ["1.1", ""]]
    assert body(rows[1])["cells"][1][0]["annotations"] == {"bold": True}


DEPENDENCIES = (
    "## Dependencies\n\n3 dependency updates\n\n| Dependency | Version | Links |\n"
    "|---|---|---|\n| serde | 1.0 → 1.1 | #1, `abc1234` |\n| debian | | #2 |\n"
    "| **Breaking:** node | 18 → 20 | #3 |\n\n## Contributors\n"
)


def test_dependency_table_goes_in_a_toggle() -> None:
    blocks = markdown_to_blocks(DEPENDENCIES)
    assert [b["type"] for b in blocks] == ["heading_2", "toggle", "heading_2"]
    toggle = blocks[1]
    assert texts(toggle) == "3 dependency updates"
    (table,) = block_children(toggle)
    assert table["type"] == "table" and len(block_children(table)) == 4
    assert plain_text_of_blocks(blocks) == plain_text_of_markdown(DEPENDENCIES)


@pytest.mark.parametrize(
    "markdown",
    [
        "3 dependency updates\n\nThen a paragraph.\n",  # no table after it
        "Some dependency updates\n\n| a |\n|---|\n| 1 |\n",  # not the notes' line
        "| a |\n|---|\n| 1 |\n",  # a table alone
    ],
)
def test_other_paragraphs_and_tables_stay_as_they_are(markdown: str) -> None:
    assert "toggle" not in [b["type"] for b in markdown_to_blocks(markdown)]


# (fence info, Notion language)
LANGUAGES = [
    ("python", "python"),
    ("py", "python"),
    ("Python", "python"),
    ("js", "javascript"),
    ("ts", "typescript"),
    ("sh", "shell"),
    ("bash", "bash"),
    ("yml", "yaml"),
    ("c++", "c++"),
    ("cpp", "c++"),
    ("csharp", "c#"),
    ("kt", "kotlin"),
    ("dockerfile", "docker"),
    ("", "plain text"),
    ("text", "plain text"),
    ("brainfuck", "plain text"),
    ("python {linenos}", "python"),
]


@pytest.mark.parametrize(("info", "language"), LANGUAGES)
def test_code_language(info: str, language: str) -> None:
    assert code_language(info) == language


def test_plain_text_helpers_agree() -> None:
    markdown = (
        "# 1.4.0\n\n- **Fix** crash `x` ~~old~~ [PR](https://e.test/1)\n  - nested\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n\n```js\nlet a = 1\n```\n\n> q\n\n---\n\n- [x] done\n"
    )
    assert plain_text_of_blocks(markdown_to_blocks(markdown)) == plain_text_of_markdown(markdown)


def test_every_rich_text_within_limits_in_a_hostile_document() -> None:
    paragraph = ("漢字😀" * 700 + " **bold** ") * 3
    cell = " ".join(f"*{i}*" for i in range(150))
    markdown = f"{paragraph}\n\n| h |\n|---|\n| {cell} |\n\n- {paragraph}\n"
    blocks = markdown_to_blocks(markdown)
    for array in all_rich_text(blocks):
        assert len(array) <= MAX_RICH_TEXT_ITEMS
        assert all(utf16_len(i["text"]["content"]) <= MAX_TEXT_UNITS for i in array)
    assert normalize_text(plain_text_of_blocks(blocks)) == normalize_text(
        plain_text_of_markdown(markdown)
    )
