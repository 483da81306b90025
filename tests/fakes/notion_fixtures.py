"""pytest fixtures around :class:`NotionFake`: the fake, a raw client, a ready publisher.

Imported by ``tests/release_notes/conftest.py``; usable from any conftest the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from notion_client import Client

from release_notes.notion import NotionConfig, NotionPublisher, TokenBucket
from tests.fakes.notion_fake import NotionFake


class FakeClock:
    """A monotonic clock whose ``sleep`` advances time instantly and records the waits."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def fake_config(fake: NotionFake, **overrides: Any) -> NotionConfig:
    """A config for ``fake`` with notion-client's retry sleeps cut to a millisecond."""
    values: dict[str, Any] = {
        "token": fake.token,
        "database_id": fake.database_id,
        "base_url": fake.base_url,
        "timeout_s": 10.0,
        "max_retries": 2,
        "initial_retry_delay_ms": 1,
        "max_retry_delay_ms": 1,
        # The fake's search shows a new page at once unless told to lag (``query_lag``).
        "create_settle_s": 0.0,
    }
    values.update(overrides)
    return NotionConfig(**values)


def instant_limiter() -> TokenBucket:
    """A rate limiter on fake time: the average stays under 3/s without real waiting."""
    clock = FakeClock()
    return TokenBucket(clock=clock, sleep=clock.sleep)


def fake_publisher(fake: NotionFake, **overrides: Any) -> NotionPublisher:
    """A publisher for ``fake`` (schema not initialised) with an instant limiter."""
    return NotionPublisher(fake_config(fake, **overrides), limiter=instant_limiter())


@pytest.fixture
def notion_fake() -> Iterator[NotionFake]:
    """A started local Notion with one database (title property "Name" only)."""
    with NotionFake() as fake:
        yield fake


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def notion_client(notion_fake: NotionFake) -> Iterator[Client]:
    """The real notion-client pointed at the fake (its httpx client closed afterwards)."""
    http = httpx.Client()
    try:
        yield Client(
            client=http,
            auth=notion_fake.token,
            base_url=notion_fake.base_url,
            retry=False,
            logger=logging.getLogger("tests.notion_client"),
        )
    finally:
        http.close()


@pytest.fixture
def notion_publisher(notion_fake: NotionFake, fake_clock: FakeClock) -> Iterator[NotionPublisher]:
    """A publisher on the fake whose schema is initialised; its rate limiter uses fake time."""
    limiter = TokenBucket(clock=fake_clock, sleep=fake_clock.sleep)
    with NotionPublisher(fake_config(notion_fake), limiter=limiter) as publisher:
        publisher.init_schema()
        notion_fake.reset_requests()
        yield publisher
