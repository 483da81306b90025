"""A publisher must not leave native memory for the cyclic collector (job worker RSS)."""

from __future__ import annotations

import gc
import ssl
import weakref
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from release_notes.notion import NotionConfig, NotionPublisher, shared_ssl_context

CONFIG = NotionConfig(token="secret_test", database_id="db", base_url="http://127.0.0.1:9")


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_publishers_share_one_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    shared_ssl_context()
    made: list[Any] = []
    original = ssl.SSLContext.__new__

    def counting(cls: Any, *args: Any, **kwargs: Any) -> Any:
        made.append(cls)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "__new__", counting)
    for _ in range(3):
        with NotionPublisher(CONFIG):
            pass
    assert made == []


def test_a_closed_publisher_is_freed_without_the_cyclic_collector(no_gc: None) -> None:
    publisher = NotionPublisher(CONFIG)
    ref = weakref.ref(publisher)
    publisher.close()
    del publisher
    assert ref() is None


def test_an_injected_client_keeps_no_hooks_of_closed_publishers() -> None:
    with httpx.Client() as http:
        before = list(http.event_hooks["request"])
        for _ in range(3):
            with NotionPublisher(CONFIG, http_client=http):
                assert len(http.event_hooks["request"]) == len(before) + 1
        assert http.event_hooks["request"] == before
        assert not http.is_closed
