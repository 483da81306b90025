"""A big, hostile release note goes to Notion and comes back with the same text."""

from typing import Any

from notion_client import Client

from release_notes.markdown_doc import parse_markdown
from release_notes.notion import NotionPublisher, PageContent
from release_notes.notion_blocks import (
    MAX_RICH_TEXT_ITEMS,
    MAX_TEXT_UNITS,
    count_blocks,
    markdown_to_blocks,
    normalize_text,
    plain_text_of_blocks,
    plain_text_of_markdown,
    utf16_len,
)
from tests.fakes.notion_fake import NotionFake

EMOJI = "🍣🚀👨‍👩‍👧✅"


def big_note(commits: int = 1500) -> str:
    """1,500 commit items with long bodies, nesting, code, tables, emoji, a 5,000-char paragraph."""
    long_paragraph = (
        "注文が入ったら厨房に表示します。" + EMOJI + " Orders flow to the kitchen. "
    ) * 100
    long_paragraph = long_paragraph[:5000]
    assert len(long_paragraph) == 5000
    lines = ["# POS 3.12.0 " + EMOJI, "", long_paragraph, "", "## Changes", ""]
    for i in range(commits):
        body = (
            f"Body of commit {i}: the register now keeps the tab open while the kitchen "
            f"display reloads; `retry_after={i % 7}` is honoured and ~~old behaviour~~ is gone. "
        ) * 3
        lines.append(
            f"- **feat(pos-{i % 13}): change {i}** {EMOJI[i % 4]} "
            f"([{i:07x}](https://git.test/pos/commit/{i:040x})) by *Dev {i % 17}*"
        )
        lines.append(f"  - {body}")
        if i % 10 == 0:
            lines += [
                f"    1. step {i}.1",
                f"       - sub-step {i}.1.a {EMOJI}",
                f"         - [x] verified {i} in store 東京-{i % 5}",
            ]
        if i % 50 == 0:
            lines += [
                "",
                "  ```python",
                f"  def fix_{i}():",
                f"      return '{EMOJI}' * {i}",
                "  ```",
                "",
            ]
        if i % 100 == 0 and i:
            lines += [
                "",
                "| Store | Before | After |",
                "|---|:-:|---:|",
                *(f"| 店舗 {i}-{r} | **{r}** ms | `{r // 2}` ms 🍜 |" for r in range(12)),
                "",
            ]
    lines += ["", "## Store impact", "", "| # | Note |", "|---|---|"]
    lines += [f"| {r} | row {r} {EMOJI} |" for r in range(150)]
    lines += ["", "> Quote with **bold** and a [link](https://git.test/x)", "", "---", ""]
    return "\n".join(lines) + "\n"


def read_back(client: Client, block_id: str) -> list[dict[str, Any]]:
    """Every block under ``block_id`` through the real client, children attached."""
    blocks: list[dict[str, Any]] = []
    cursor = None
    while True:
        kwargs: dict[str, Any] = {"page_size": 100}
        if cursor:
            kwargs["start_cursor"] = cursor
        result = client.blocks.children.list(block_id, **kwargs)
        for block in result["results"]:
            if block["has_children"]:
                block["children"] = read_back(client, block["id"])
            blocks.append(block)
        if not result["has_more"]:
            return blocks
        cursor = result["next_cursor"]


def flat_types(blocks: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for block in blocks:
        out.append(block["type"])
        kids = block.get("children") or block[block["type"]].get("children") or []
        out.extend(flat_types(kids))
    return out


def test_big_note_round_trips(
    notion_publisher: NotionPublisher, notion_fake: NotionFake, notion_client: Client
) -> None:
    markdown = big_note()
    doc = parse_markdown(markdown)  # one parse: the blocks and the expected text come from it
    expected_blocks = markdown_to_blocks(doc)
    note = PageContent(version="3.12.0", markdown=markdown, app="pos")
    result = notion_publisher.publish(note, blocks=expected_blocks)
    assert result.action == "created"
    assert result.blocks == count_blocks(expected_blocks) > 3500

    stored = read_back(notion_client, result.page_id)
    assert flat_types(stored) == flat_types(expected_blocks)
    text = plain_text_of_blocks(stored)
    source = plain_text_of_markdown(doc)
    assert normalize_text(text) == normalize_text(source)
    assert text == source  # nothing needed a block split, so even the layout matches
    assert len(source) > 600_000

    for request in notion_fake.requests:
        assert request.status == 200
        assert request.body_bytes <= 500_000

    for block in notion_fake.iter_blocks():
        arrays = [block.body.get("rich_text", []), *block.body.get("cells", [])]
        for array in arrays:
            assert len(array) <= MAX_RICH_TEXT_ITEMS
            assert all(utf16_len(item["plain_text"]) <= MAX_TEXT_UNITS for item in array)

    again = notion_publisher.publish(note)
    assert again.action == "skipped"
