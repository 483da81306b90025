"""Notion pages updated in place: only what changed is written, a retry goes on from where
the failed attempt stopped, readers never see fewer entries, and no duplicate page even when
Notion's search lags behind a create (issue 19 B)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from release_notes.notion import (
    CreateUnconfirmed,
    MemoryLedger,
    NotionPublisher,
    PageContent,
    TransientNotionError,
    block_fingerprint,
    plan_changes,
)
from release_notes.notion_blocks import (
    markdown_to_blocks,
    plain_text_of_blocks,
    plain_text_of_markdown,
)
from tests.fakes.notion_fake import Fault, NotionFake, RecordedRequest
from tests.fakes.notion_fixtures import FakeClock, fake_config, fake_publisher, instant_limiter

APPEND = {"method": "PATCH", "path": r"/children$"}
CREATE = {"method": "POST", "path": r"/v1/pages$"}


def big_note(lines: int = 1000, *, changed: int | None = None, state: str = "approved") -> str:
    """A note of ``lines`` + 1 top-level blocks: a release-state line, then entries."""
    parts = [f"> **Release state:** {state}", ""]
    for i in range(lines):
        text = f"- fix(pos): entry {i} keeps the tab"
        if i == changed:
            text += " (reworded)"
        parts.append(text)
    return "\n".join(parts) + "\n"


def content(markdown: str) -> PageContent:
    return PageContent(version="4.0.0", markdown=markdown, app="pos", commits=1000)


def publisher(fake: NotionFake, **config: Any) -> NotionPublisher:
    """A fresh publisher, as each job attempt has (discovery and schema check included)."""
    return fake_publisher(fake, **config)


@pytest.fixture
def fake(notion_fake: NotionFake) -> NotionFake:
    with fake_publisher(notion_fake) as p:
        p.init_schema()
    notion_fake.reset_requests()
    return notion_fake


def page_text(fake: NotionFake) -> str:
    (page,) = fake.live_pages()
    return plain_text_of_blocks(fake.block_tree(page["id"]))


def writes(fake: NotionFake) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in fake.requests if r.method != "GET"]


# --- only what changed -------------------------------------------------------------------


def test_one_line_change_to_a_1000_block_page_takes_at_most_5_requests(fake: NotionFake) -> None:
    ledger = MemoryLedger()
    with publisher(fake) as p:
        first = p.publish(content(big_note()), ledger=ledger)
    assert first.action == "created" and first.blocks == 1001
    block_ids = [b["id"] for b in fake.block_tree(first.page_id)]
    fake.reset_requests()

    changed = big_note(changed=500)
    with publisher(fake) as p:
        result = p.publish(content(changed), ledger=ledger)
    assert result.action == "updated"
    assert fake.count() == result.requests <= 5
    # the one block is updated in place; nothing erased, appended or deleted
    assert fake.count("PATCH", r"/v1/blocks/[^/]+$") == 1
    assert fake.count("PATCH", "/children") == fake.count("DELETE") == 0
    assert [b["id"] for b in fake.block_tree(first.page_id)] == block_ids
    assert page_text(fake) == plain_text_of_markdown(changed)

    # The ledger took the update in: the next change writes only its own block.
    fake.reset_requests()
    with publisher(fake) as p:
        p.publish(content(big_note(changed=500, state="in beta stores")), ledger=ledger)
    assert fake.count("PATCH", r"/v1/blocks/[^/]+$") == 1
    assert fake.count() <= 5


def test_a_stage_change_updates_only_the_release_state_line(fake: NotionFake) -> None:
    ledger = MemoryLedger()
    with publisher(fake) as p:
        first = p.publish(content(big_note(50)), ledger=ledger)
    first_block = fake.block_tree(first.page_id)[0]["id"]
    fake.reset_requests()
    with publisher(fake) as p:
        p.publish(content(big_note(50, state="in beta stores")), ledger=ledger)
    block_writes = [w for w in writes(fake) if "/blocks/" in w[1]]
    assert block_writes == [("PATCH", f"/v1/blocks/{first_block}")]
    assert "in beta stores" in page_text(fake)


def test_entries_added_removed_and_changed_are_written_in_place(fake: NotionFake) -> None:
    ledger = MemoryLedger()
    old = "# 4.0.0\n\n" + "\n\n".join(f"Entry {i}." for i in range(20)) + "\n"
    new_parts = [f"Entry {i}." for i in range(20) if i not in (3, 4)]
    new_parts.insert(10, "A new entry.")
    new_parts[0] = "Entry 0, reworded."
    new_parts.append("```python\nprint(1)\n```")
    new = "# 4.0.0\n\n" + "\n\n".join(new_parts) + "\n"
    with publisher(fake) as p:
        first = p.publish(content(old), ledger=ledger)
    fake.reset_requests()
    with publisher(fake) as p:
        p.publish(content(new), ledger=ledger)
    assert page_text(fake) == plain_text_of_markdown(new)
    assert fake.count("PATCH", r"/v1/blocks/[^/]+$") == 1  # "Entry 0" reworded
    assert fake.count("PATCH", "/children") == 2  # after "Entry 11", and at the end
    assert fake.count("DELETE") == 2  # entries 3 and 4
    # the inserts went after the right sibling
    bodies = [b for b in fake.block_tree(first.page_id)]
    texts = [plain_text_of_blocks([b]) for b in bodies]
    assert texts.index("A new entry.") == texts.index("Entry 11.") + 1


def test_a_reader_never_sees_fewer_entries_nor_publishing(fake: NotionFake) -> None:
    ledger = MemoryLedger()
    old = "\n\n".join(f"- entry {i}" for i in range(300)) + "\n"
    kept = [f"- entry {i}" for i in range(300) if i % 7]
    new = "\n\n".join(["Top line.", *kept, *(f"- new entry {i}" for i in range(60))]) + "\n"
    with publisher(fake) as p:
        first = p.publish(content(old), ledger=ledger)
    seen: list[tuple[int, str]] = []

    def watch(f: NotionFake, _: RecordedRequest) -> None:
        page = f.pages[first.page_id]
        live = [c for c in f.children[first.page_id] if not f.blocks[c].in_trash]
        seen.append((len(live), page.properties["Status"]["name"]))

    fake.after_request.append(watch)
    with publisher(fake) as p:
        p.publish(content(new), ledger=ledger)
    assert min(n for n, _ in seen) >= 300  # the old 300 until the new ones are there
    assert {status for _, status in seen} == {"Published"}
    assert page_text(fake) == plain_text_of_markdown(new)


# --- a retry goes on ---------------------------------------------------------------------


def test_a_retry_continues_where_the_failed_attempt_stopped(fake: NotionFake) -> None:
    ledger = MemoryLedger()
    fake.inject(Fault.http(500, skip=4, **APPEND))  # the 5th of 11 appends fails
    with publisher(fake) as p, pytest.raises(TransientNotionError):
        p.publish(content(big_note()), ledger=ledger)
    done = len(fake.block_tree(fake.live_pages()[0]["id"]))
    assert done == 400
    fake.reset_requests()
    with publisher(fake) as p:
        result = p.publish(content(big_note()), ledger=ledger)
    assert result.action == "updated"
    # 601 blocks left: 7 appends; the page is read once to see whether the failed append
    # landed (a 500 may have); nothing erased or deleted.
    assert fake.count("PATCH", "/children") == 7
    assert fake.count("DELETE") == 0
    assert page_text(fake) == plain_text_of_markdown(big_note())


def test_an_append_that_landed_without_its_response_is_not_repeated(fake: NotionFake) -> None:
    ledger = MemoryLedger()
    fake.inject(Fault.lost_response(skip=2, **APPEND))
    with publisher(fake) as p, pytest.raises(TransientNotionError):
        p.publish(content(big_note(500)), ledger=ledger)
    fake.reset_requests()
    with publisher(fake) as p:
        p.publish(content(big_note(500)), ledger=ledger)
    assert fake.count("PATCH", "/children") == 3  # 300 of 501 were there (one lost reply)
    assert fake.count("DELETE") == 0
    assert page_text(fake) == plain_text_of_markdown(big_note(500))


def test_a_page_published_before_the_ledger_is_adopted_not_rewritten(fake: NotionFake) -> None:
    with publisher(fake) as p:
        p.publish(content(big_note(200)), ledger=MemoryLedger())
    fake.reset_requests()
    with publisher(fake) as p:  # a ledger that never saw the page
        p.publish(content(big_note(200, changed=7)), ledger=MemoryLedger())
    assert fake.count("PATCH", r"/v1/blocks/[^/]+$") == 1
    assert fake.count("PATCH", "/children") == fake.count("DELETE") == 0
    assert page_text(fake) == plain_text_of_markdown(big_note(200, changed=7))


def test_a_block_deleted_by_hand_in_notion_is_put_back_on_the_next_attempt(
    fake: NotionFake,
) -> None:
    ledger = MemoryLedger()
    with publisher(fake) as p:
        first = p.publish(content(big_note(30)), ledger=ledger)
    removed = fake.block_tree(first.page_id)[11]  # entry 10, deleted by a person
    fake.blocks[removed["id"]].in_trash = True
    changed = big_note(30, changed=10)
    with publisher(fake) as p, pytest.raises(TransientNotionError) as info:
        p.publish(content(changed), ledger=ledger)
    assert info.value.code == "page_changed"
    with publisher(fake) as p:
        assert p.publish(content(changed), ledger=ledger).action == "updated"
    assert page_text(fake) == plain_text_of_markdown(changed)


# --- Retry-After within the attempt ------------------------------------------------------


def test_retry_after_is_waited_out_within_the_attempt(fake: NotionFake) -> None:
    clock = FakeClock()
    fake.inject(Fault.rate_limited(retry_after=2, skip=2, **APPEND))
    config = fake_config(fake, max_retries=0, retry_after_max_s=30.0)
    with NotionPublisher(config, limiter=instant_limiter(), sleep=clock.sleep) as p:
        result = p.publish(content(big_note(500)))
        assert p.retry_after_waits == [2.0]
    assert result.action == "created"
    assert clock.sleeps == [2.0]
    assert fake.count("PATCH", "/children") == 6 + 1  # the refused append, sent again
    assert page_text(fake) == plain_text_of_markdown(big_note(500))

    # A wait longer than the bound ends the attempt: the job queue honours it.
    fake.inject(Fault.rate_limited(retry_after=600, **APPEND))
    with (
        NotionPublisher(config, limiter=instant_limiter(), sleep=clock.sleep) as p,
        pytest.raises(TransientNotionError) as info,
    ):
        p.publish(content(big_note(501)))
    assert info.value.retry_after == 600.0
    assert clock.sleeps == [2.0]


# --- lagging search ----------------------------------------------------------------------


class WallClock:
    """One time for the fake (datetime) and the publisher (seconds)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def datetime(self) -> datetime:
        return self.now

    def seconds(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def lagging_fake(clock: WallClock, lag: float) -> NotionFake:
    fake = NotionFake(clock=clock.datetime, query_lag=timedelta(seconds=lag)).start()
    with fake_publisher(fake) as p:
        p.init_schema()
    return fake


def lag_publisher(fake: NotionFake, clock: WallClock) -> NotionPublisher:
    config = fake_config(fake, create_settle_s=30.0)
    return NotionPublisher(config, limiter=instant_limiter(), clock=clock.seconds)


def test_lagging_search_does_not_make_a_second_page() -> None:
    clock = WallClock()
    fake = lagging_fake(clock, lag=20)
    try:
        ledger = MemoryLedger()
        fake.inject(Fault.lost_response(**CREATE))
        with lag_publisher(fake, clock) as p, pytest.raises(TransientNotionError):
            p.publish(content(big_note(10)), ledger=ledger)
        clock.advance(5)  # the page exists, but the search does not show it yet
        with lag_publisher(fake, clock) as p, pytest.raises(CreateUnconfirmed) as info:
            p.publish(content(big_note(10)), ledger=ledger)
        assert info.value.retry_after == pytest.approx(25)
        assert fake.count("POST", r"/v1/pages$") == 1
        clock.advance(26)
        with lag_publisher(fake, clock) as p:
            result = p.publish(content(big_note(10)), ledger=ledger)
        assert result.action == "updated"
        (page,) = fake.live_pages()
        assert page["properties"]["Publish key"]["rich_text"][0]["plain_text"] == ledger.load().key
        assert page_text(fake) == plain_text_of_markdown(big_note(10))
    finally:
        fake.stop()


def test_a_page_found_after_a_second_create_is_trashed() -> None:
    clock = WallClock()
    fake = lagging_fake(clock, lag=90)  # longer than the 30 s the publisher waits
    try:
        ledger = MemoryLedger()
        fake.inject(Fault.lost_response(**CREATE))
        with lag_publisher(fake, clock) as p, pytest.raises(TransientNotionError):
            p.publish(content(big_note(10)), ledger=ledger)
        clock.advance(31)
        with lag_publisher(fake, clock) as p:
            second = p.publish(content(big_note(10)), ledger=ledger)
        assert second.action == "created" and second.recheck_after == pytest.approx(60)
        clock.advance(30)  # the search does not show the first page yet
        with lag_publisher(fake, clock) as p:
            third = p.publish(content(big_note(10)), ledger=ledger)
        assert third.trashed_duplicates == () and third.recheck_after == pytest.approx(60)
        clock.advance(60)  # both pages now show in the search
        with lag_publisher(fake, clock) as p:
            fourth = p.publish(content(big_note(10)), ledger=ledger)
        assert fourth.action == "skipped" and len(fourth.trashed_duplicates) == 1
        clock.advance(600)  # the watch is over
        with lag_publisher(fake, clock) as p:
            assert p.publish(content(big_note(10)), ledger=ledger).recheck_after is None
        (page,) = fake.live_pages()
        assert page["id"] == second.page_id
        assert page_text(fake) == plain_text_of_markdown(big_note(10))
    finally:
        fake.stop()


# --- the plan ----------------------------------------------------------------------------


def entries_for(markdown: str) -> list[dict[str, Any]]:
    return [
        {"id": f"b{i}", "fp": block_fingerprint(b), "type": b["type"], "kids": False}
        for i, b in enumerate(markdown_to_blocks(markdown))
    ]


def test_plan_keeps_updates_inserts_and_deletes() -> None:
    old = entries_for("A.\n\nB.\n\nC.\n\nD.\n")
    plan = plan_changes(old, markdown_to_blocks("A.\n\nB2.\n\nC.\n\nNew.\n\n# Heading\n"))
    assert [(s.entry and s.entry["id"], s.block is not None) for s in plan.slots] == [
        ("b0", False),
        ("b1", True),
        ("b2", False),
        ("b3", True),
        (None, True),
    ]
    assert plan.deletes == []


def test_plan_for_a_new_first_block_of_another_type_rebuilds_below() -> None:
    old = entries_for("A.\n\nB.\n")
    plan = plan_changes(old, markdown_to_blocks("# Title\n\nA.\n\nB.\n"))
    assert plan.updates == 0 and plan.inserts == 3
    assert [d["id"] for d in plan.deletes] == ["b0", "b1"]


def test_plan_for_a_new_first_paragraph_updates_the_old_first_block() -> None:
    old = entries_for("A.\n\nB.\n")
    plan = plan_changes(old, markdown_to_blocks("Z.\n\nA.\n\nB.\n"))
    assert plan.updates == 1 and plan.inserts == 1 and plan.deletes == []
