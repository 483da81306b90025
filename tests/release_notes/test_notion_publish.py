"""Publishing against the local Notion: idempotency, request budget, schema, rate limit."""

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from release_notes.notion import (
    REQUIRED_PROPERTIES,
    NotionConfig,
    NotionPublisher,
    PageContent,
    PermanentNotionError,
    TokenBucket,
    notes_hash,
)
from release_notes.notion_blocks import (
    normalize_text,
    plain_text_of_blocks,
    plain_text_of_markdown,
)
from tests.fakes.notion_fake import NotionFake
from tests.fakes.notion_fixtures import FakeClock, fake_config, fake_publisher, instant_limiter

NOTE = """# POS 3.12.0

## Features
- **Split bills** by seat ([#123](https://git.test/pr/123))
  - works with `tips`
- [x] QA signed off

## Fixes
1. Kitchen display no longer ~~freezes~~ drops orders 🍜
"""


def page(markdown: str = NOTE, version: str = "3.12.0", **extra: Any) -> PageContent:
    values: dict[str, Any] = {
        "version": version,
        "markdown": markdown,
        "app": "pos",
        "release_date": date(2024, 7, 1),
        "commits": 42,
        "breaking_changes": 1,
        "release_link": "https://git.test/releases/3.12.0",
    }
    values.update(extra)
    return PageContent(**values)


def props(fake: NotionFake, page_id: str) -> dict[str, Any]:
    (found,) = [p for p in fake.live_pages() if p["id"] == page_id]
    return dict(found["properties"])


def status_of(fake: NotionFake, page_id: str) -> str:
    return str(props(fake, page_id)["Status"]["select"]["name"])


def stored_text(fake: NotionFake, page_id: str) -> str:
    return plain_text_of_blocks(fake.block_tree(page_id))


# --- schema ----------------------------------------------------------------------------


def test_check_schema_reports_missing_and_init_adds_them(notion_fake: NotionFake) -> None:
    with fake_publisher(notion_fake) as publisher:
        report = publisher.check_schema()
        assert report.accessible and not report.ok
        assert set(report.missing) == set(REQUIRED_PROPERTIES)  # title is still "Name"
        assert report.title_property == "Name"
        assert publisher.init_schema().ok
        assert publisher.check_schema().ok
    ds = notion_fake.data_sources[notion_fake.data_source_id]
    assert {n: p["type"] for n, p in ds.properties.items()} == REQUIRED_PROPERTIES
    options = [o["name"] for o in ds.properties["Status"]["select"]["options"]]
    assert options == ["Draft", "Publishing", "Published", "Failed"]


def test_wrong_property_type_is_reported_not_converted() -> None:
    with NotionFake(properties={"Version": {"title": {}}, "Commits": {"rich_text": {}}}) as fake:
        with fake_publisher(fake) as publisher:
            report = publisher.check_schema()
            assert report.wrong_type == {"Commits": ("number", "rich_text")}
            with pytest.raises(PermanentNotionError, match="Commits is rich_text"):
                publisher.init_schema()
            with pytest.raises(PermanentNotionError, match="run init_schema"):
                publisher.publish(page())
        assert fake.live_pages() == []


def test_inaccessible_database_is_reported(notion_fake: NotionFake) -> None:
    config = fake_config(notion_fake, database_id="1" * 32)
    with NotionPublisher(config, limiter=instant_limiter()) as publisher:
        report = publisher.check_schema()
    assert not report.accessible
    assert report.error is not None and "Could not find database" in report.error


def test_data_source_id_skips_discovery(notion_fake: NotionFake) -> None:
    config = fake_config(notion_fake, database_id=None, data_source_id=notion_fake.data_source_id)
    with NotionPublisher(config, limiter=instant_limiter()) as publisher:
        publisher.init_schema()
    assert notion_fake.count("GET", "/databases/") == 0


def test_config_needs_a_target() -> None:
    with pytest.raises(ValueError, match="database_id or data_source_id"):
        NotionConfig(token="t")


# --- idempotency -----------------------------------------------------------------------


def test_publish_creates_then_skips_unchanged(
    notion_publisher: NotionPublisher, notion_fake: NotionFake
) -> None:
    first = notion_publisher.publish(page())
    assert first.action == "created"
    assert status_of(notion_fake, first.page_id) == "Published"
    stored = props(notion_fake, first.page_id)
    assert stored["Version"]["title"][0]["plain_text"] == "3.12.0"
    assert stored["App"]["select"]["name"] == "pos"
    assert stored["Release date"]["date"]["start"] == "2024-07-01"
    assert stored["Commits"]["number"] == 42
    assert stored["Breaking changes"]["number"] == 1
    assert stored["Release link"]["url"] == "https://git.test/releases/3.12.0"
    assert stored["Notes hash"]["rich_text"][0]["plain_text"] == notes_hash(page())
    assert stored_text(notion_fake, first.page_id) == plain_text_of_markdown(NOTE)

    notion_fake.reset_requests()
    second = notion_publisher.publish(page())
    assert second.action == "skipped"
    assert second.page_id == first.page_id
    assert notion_fake.count() == second.requests == 1  # one query, no writes
    assert len(notion_fake.live_pages()) == 1


def test_changed_note_updates_the_same_page(
    notion_publisher: NotionPublisher, notion_fake: NotionFake
) -> None:
    first = notion_publisher.publish(page())
    changed = NOTE + "\n- one more fix\n"
    second = notion_publisher.publish(page(changed, commits=43))
    assert second.action == "updated"
    assert second.page_id == first.page_id
    assert len(notion_fake.live_pages()) == 1
    assert stored_text(notion_fake, first.page_id) == plain_text_of_markdown(changed)
    assert props(notion_fake, first.page_id)["Commits"]["number"] == 43
    assert notion_publisher.publish(page(changed, commits=43)).action == "skipped"


def test_property_change_alone_republishes(
    notion_publisher: NotionPublisher, notion_fake: NotionFake
) -> None:
    first = notion_publisher.publish(page())
    again = notion_publisher.publish(page(release_date=date(2024, 7, 2)))
    assert again.action == "updated" and again.page_id == first.page_id


def test_same_version_of_another_app_is_another_page(
    notion_publisher: NotionPublisher, notion_fake: NotionFake
) -> None:
    pos = notion_publisher.publish(page())
    kds = notion_publisher.publish(page(app="kds"))
    assert pos.page_id != kds.page_id
    assert len(notion_fake.live_pages()) == 2


def test_duplicates_keep_the_oldest_and_trash_the_rest(
    notion_publisher: NotionPublisher, notion_fake: NotionFake
) -> None:
    base = datetime(2024, 7, 1, 9, 0, tzinfo=UTC)
    title = {
        "Version": {"title": [{"text": {"content": "3.12.0"}}]},
        "App": {"select": {"name": "pos"}},
    }
    newer = notion_fake.seed_page(title, created=base + timedelta(minutes=5))
    oldest = notion_fake.seed_page(title, created=base)
    newest = notion_fake.seed_page(title, created=base + timedelta(minutes=9))
    other = notion_fake.seed_page(
        {
            "Version": {"title": [{"text": {"content": "3.11.0"}}]},
            "App": {"select": {"name": "pos"}},
        }
    )
    result = notion_publisher.publish(page())
    assert result.page_id == oldest
    assert result.action == "updated"
    assert set(result.trashed_duplicates) == {newer, newest}
    assert {p["id"] for p in notion_fake.live_pages()} == {oldest, other}
    assert notion_fake.pages[newer].in_trash and notion_fake.pages[newest].in_trash


def test_empty_note(notion_publisher: NotionPublisher, notion_fake: NotionFake) -> None:
    result = notion_publisher.publish(page(""))
    assert result.action == "created" and result.blocks == 0
    assert notion_fake.block_tree(result.page_id) == []


# --- request budget ----------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 99, 100, 101, 250, 1000])
def test_request_budget(notion_publisher: NotionPublisher, notion_fake: NotionFake, n: int) -> None:
    markdown = "\n\n".join(f"Paragraph {i} with **bold** text." for i in range(n))
    created = notion_publisher.publish(page(markdown))
    bound = math.ceil(n / 100) + 5
    assert created.requests <= bound
    assert notion_fake.count() == created.requests
    changed = markdown + "\n\nOne more."
    updated = notion_publisher.publish(page(changed))
    assert updated.action == "updated"
    assert updated.requests <= math.ceil((n + 1) / 100) + 5
    assert normalize_text(stored_text(notion_fake, created.page_id)) == normalize_text(
        plain_text_of_markdown(changed)
    )


def test_a_fresh_publisher_stays_within_budget(notion_fake: NotionFake) -> None:
    with fake_publisher(notion_fake) as setup:
        setup.init_schema()
    notion_fake.reset_requests()
    clock = FakeClock()
    limiter = TokenBucket(clock=clock, sleep=clock.sleep)
    markdown = "\n".join(f"- item {i}\n  - detail {i}\n    - more {i}" for i in range(300))
    with NotionPublisher(fake_config(notion_fake), limiter=limiter) as publisher:
        result = publisher.publish(page(markdown))
    assert result.requests == notion_fake.count() <= math.ceil(300 / 100) + 5


def test_deep_nesting_goes_to_returned_ids(
    notion_publisher: NotionPublisher, notion_fake: NotionFake
) -> None:
    markdown = "- l1\n  - l2\n    - l3\n      - l4\n        - l5\n- after"
    result = notion_publisher.publish(page(markdown))
    tree = notion_fake.block_tree(result.page_id)
    depth, node = 0, tree[0]
    while node["children"]:
        depth, node = depth + 1, node["children"][0]
    assert depth == 4
    assert stored_text(notion_fake, result.page_id) == plain_text_of_markdown(markdown)


def test_wide_lists_and_tables_are_split(
    notion_publisher: NotionPublisher, notion_fake: NotionFake
) -> None:
    items = "\n".join(f"  - sub {i}" for i in range(250))
    rows = "\n".join(f"| {i} | r{i} |" for i in range(230))
    markdown = f"- parent\n{items}\n\n| a | b |\n|---|---|\n{rows}\n"
    result = notion_publisher.publish(page(markdown))
    tree = notion_fake.block_tree(result.page_id)
    assert [b["type"] for b in tree] == ["bulleted_list_item", "table"]
    assert len(tree[0]["children"]) == 250
    assert len(tree[1]["children"]) == 231
    assert stored_text(notion_fake, result.page_id) == plain_text_of_markdown(markdown)


@pytest.mark.parametrize("updates", [3, 150])
def test_dependency_updates_are_a_toggle_holding_their_table(
    notion_publisher: NotionPublisher, notion_fake: NotionFake, updates: int
) -> None:
    rows = "\n".join(f"| lib{i} | 1.{i} → 1.{i + 1} | #{i} |" for i in range(updates))
    markdown = (
        f"## Dependencies\n\n{updates} dependency updates\n\n"
        f"| Dependency | Version | Links |\n|---|---|---|\n{rows}\n\n## Contributors\n\n- A\n"
    )
    result = notion_publisher.publish(page(markdown))
    tree = notion_fake.block_tree(result.page_id)
    assert [b["type"] for b in tree] == ["heading_2", "toggle", "heading_2", "bulleted_list_item"]
    (table,) = tree[1]["children"]
    assert table["type"] == "table" and len(table["children"]) == updates + 1
    assert stored_text(notion_fake, result.page_id) == plain_text_of_markdown(markdown)


# --- rate limit ----------------------------------------------------------------------------


def test_token_bucket_average_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.5, capacity=3, clock=clock, sleep=clock.sleep)
    start = clock()
    for _ in range(100):
        bucket.acquire()
    elapsed = clock() - start
    assert 100 / elapsed < 3
    assert elapsed == pytest.approx((100 - 3) / 2.5)


def test_publisher_requests_go_through_the_limiter(
    notion_publisher: NotionPublisher, fake_clock: FakeClock
) -> None:
    start = fake_clock()
    markdown = "\n\n".join(f"p{i}" for i in range(1200))
    result = notion_publisher.publish(page(markdown))
    elapsed = fake_clock() - start
    assert result.requests >= 13
    assert result.requests / elapsed < 3


def test_unknown_data_source_is_permanent_with_notions_message(notion_fake: NotionFake) -> None:
    config = fake_config(notion_fake, database_id=None, data_source_id="3" * 32)
    with (
        NotionPublisher(config, limiter=instant_limiter()) as publisher,
        pytest.raises(PermanentNotionError) as info,
    ):
        publisher.publish(page())
    assert info.value.status == 404
    assert "Could not find data_source" in info.value.message


def test_app_name_with_comma_is_a_valid_select_option(
    notion_publisher: NotionPublisher, notion_fake: NotionFake
) -> None:
    first = notion_publisher.publish(page(app="pos, handy"))
    assert props(notion_fake, first.page_id)["App"]["select"]["name"] == "pos handy"
    assert notion_publisher.publish(page(app="pos, handy")).action == "skipped"
