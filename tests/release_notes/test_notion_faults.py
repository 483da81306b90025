"""Faults and errors: one classified attempt per publish, and the next attempt repairs."""

import socket
from typing import Any

import httpx
import pytest
from notion_client import APIErrorCode, APIResponseError
from notion_client.errors import RequestTimeoutError, UnknownHTTPResponseError

from release_notes.notion import (
    NotionPublisher,
    PageContent,
    PermanentNotionError,
    TransientNotionError,
    classify_error,
)
from release_notes.notion_blocks import plain_text_of_blocks, plain_text_of_markdown
from tests.fakes.notion_fake import Fault, NotionFake
from tests.fakes.notion_fixtures import fake_publisher

NOTE = "# 2.0.0\n\n" + "\n\n".join(f"- change {i}\n  - detail **{i}**" for i in range(250))
CREATE = {"method": "POST", "path": r"/v1/pages$"}
APPEND = {"method": "PATCH", "path": r"/children$"}


def note(markdown: str = NOTE) -> PageContent:
    return PageContent(version="2.0.0", markdown=markdown, app="kds", commits=250)


def assert_one_complete_page(fake: NotionFake, markdown: str = NOTE) -> str:
    pages = fake.live_pages()
    assert len(pages) == 1
    (only,) = pages
    assert only["properties"]["Status"]["select"]["name"] == "Published"
    assert plain_text_of_blocks(fake.block_tree(only["id"])) == plain_text_of_markdown(markdown)
    return str(only["id"])


def status_of(fake: NotionFake) -> str:
    (only,) = fake.live_pages()
    return str(only["properties"]["Status"]["select"]["name"])


# --- transient faults ------------------------------------------------------------------------


def test_one_429_is_absorbed_by_notion_client(
    notion_publisher: NotionPublisher, notion_fake: NotionFake
) -> None:
    notion_fake.inject(Fault.rate_limited(retry_after=0, **CREATE))
    result = notion_publisher.publish(note())
    assert result.action == "created"
    assert notion_fake.count("POST", r"/v1/pages$") == 2
    assert_one_complete_page(notion_fake)


@pytest.mark.parametrize(
    ("status", "retry_after", "times", "code"),
    [
        # a persistent 429 (more than notion-client absorbs) exposes its Retry-After
        (429, 7, 3, "rate_limited"),
        (500, None, 1, None),
        (502, None, 1, None),
        (503, None, 1, None),
        (504, None, 1, None),
        (529, 2, 1, "service_overload"),
    ],
)
def test_failed_create_is_transient_and_leaves_nothing(
    notion_publisher: NotionPublisher,
    notion_fake: NotionFake,
    status: int,
    retry_after: int | None,
    times: int,
    code: str | None,
) -> None:
    notion_fake.inject(Fault.http(status, retry_after=retry_after, times=times, **CREATE))
    with pytest.raises(TransientNotionError) as info:
        notion_publisher.publish(note())
    assert info.value.status == status
    if retry_after is not None:
        assert info.value.retry_after == float(retry_after)
    if code is not None:
        assert info.value.code == code
    assert notion_fake.live_pages() == []
    assert notion_publisher.publish(note()).action == "created"
    assert_one_complete_page(notion_fake)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 529])
def test_failure_half_way_leaves_publishing_and_next_attempt_replaces(
    notion_publisher: NotionPublisher, notion_fake: NotionFake, status: int
) -> None:
    notion_fake.inject(Fault.http(status, skip=1, **APPEND))  # the second append fails
    with pytest.raises(TransientNotionError):
        notion_publisher.publish(note())
    assert status_of(notion_fake) == "Publishing"
    result = notion_publisher.publish(note())
    assert result.action == "updated"
    assert_one_complete_page(notion_fake)


def test_500_on_a_read_is_retried_by_notion_client(notion_fake: NotionFake) -> None:
    with fake_publisher(notion_fake) as publisher:
        notion_fake.inject(Fault.http(500, method="GET", path="/databases/"))
        assert publisher.init_schema().ok
    assert notion_fake.count("GET", "/databases/") == 2


def test_timeout_on_create_then_found_not_duplicated(notion_fake: NotionFake) -> None:
    with fake_publisher(notion_fake, timeout_s=1.5) as publisher:
        publisher.init_schema()
        notion_fake.inject(Fault.slow(5.0, apply=True, **CREATE))
        with pytest.raises(TransientNotionError) as info:
            publisher.publish(note())
        assert info.value.code == "timeout"
        assert len(notion_fake.live_pages()) == 1  # the slow create did happen
        assert publisher.publish(note()).action == "updated"
    assert_one_complete_page(notion_fake)


def test_timeout_on_append_is_transient(notion_fake: NotionFake) -> None:
    with fake_publisher(notion_fake, timeout_s=1.5) as publisher:
        publisher.init_schema()
        notion_fake.inject(Fault.slow(5.0, apply=False, **APPEND))
        with pytest.raises(TransientNotionError):
            publisher.publish(note())
        assert status_of(notion_fake) == "Publishing"
        assert publisher.publish(note()).action == "updated"
    assert_one_complete_page(notion_fake)


@pytest.mark.parametrize(
    "fault", [Fault.lost_response(**CREATE), Fault.applied_then_error(504, **CREATE)]
)
def test_lost_create_response_is_found_by_the_next_attempt(
    notion_publisher: NotionPublisher, notion_fake: NotionFake, fault: Fault
) -> None:
    notion_fake.inject(fault)
    with pytest.raises(TransientNotionError):
        notion_publisher.publish(note())
    assert len(notion_fake.live_pages()) == 1
    assert status_of(notion_fake) == "Publishing"
    result = notion_publisher.publish(note())
    assert result.action == "updated"
    assert_one_complete_page(notion_fake)


def test_lost_append_response_then_full_replace(
    notion_publisher: NotionPublisher, notion_fake: NotionFake
) -> None:
    notion_fake.inject(Fault.lost_response(skip=1, **APPEND))
    with pytest.raises(TransientNotionError) as info:
        notion_publisher.publish(note())
    assert info.value.code == "connection"
    assert notion_publisher.publish(note()).action == "updated"
    assert_one_complete_page(notion_fake)  # no block appended twice


def test_lost_final_update_then_skip(
    notion_publisher: NotionPublisher, notion_fake: NotionFake
) -> None:
    notion_fake.inject(Fault.lost_response(method="PATCH", path=r"/v1/pages/", skip=0))
    with pytest.raises(TransientNotionError):
        notion_publisher.publish(note())
    assert notion_publisher.publish(note()).action == "skipped"
    assert_one_complete_page(notion_fake)


def test_connection_refused_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        NotionFake() as fake,
        fake_publisher(fake, base_url=f"http://127.0.0.1:{port}") as pub,
        pytest.raises(TransientNotionError) as info,
    ):
        pub.publish(note())
    assert info.value.code == "connection"


# --- permanent errors ------------------------------------------------------------------------


def test_bad_token_is_permanent_with_notions_message(notion_fake: NotionFake) -> None:
    with (
        fake_publisher(notion_fake, token="wrong") as publisher,
        pytest.raises(PermanentNotionError) as info,
    ):
        publisher.publish(note())
    assert info.value.status == 401
    assert info.value.code == "unauthorized"
    assert str(info.value) == "API token is invalid."


def test_unknown_database_is_permanent(notion_fake: NotionFake) -> None:
    with (
        fake_publisher(notion_fake, database_id="2" * 32) as publisher,
        pytest.raises(PermanentNotionError) as info,
    ):
        publisher.publish(note())
    assert info.value.status == 404
    assert "Could not find database" in info.value.message


@pytest.mark.parametrize("status", [400, 403, 404])
def test_permanent_error_half_way_marks_failed(
    notion_publisher: NotionPublisher, notion_fake: NotionFake, status: int
) -> None:
    notion_fake.inject(Fault.http(status, skip=1, **APPEND))
    with pytest.raises(PermanentNotionError) as info:
        notion_publisher.publish(note())
    assert info.value.status == status
    assert status_of(notion_fake) == "Failed"
    assert notion_publisher.publish(note()).action == "updated"
    assert_one_complete_page(notion_fake)


def test_missing_schema_is_permanent_before_any_write(notion_fake: NotionFake) -> None:
    with (
        fake_publisher(notion_fake) as publisher,
        pytest.raises(PermanentNotionError, match="missing Version"),
    ):
        publisher.publish(note())
    assert notion_fake.count("POST", r"/v1/pages$") == 0


def _api_error(status: int, code: str, headers: dict[str, str] | None = None) -> APIResponseError:
    return APIResponseError(
        code=APIErrorCode(code),
        status=status,
        message=f"notion says {code}",
        headers=httpx.Headers(headers or {}),
        raw_body_text=f'{{"code": "{code}", "message": "notion says {code}"}}',
    )


# (error raised by notion-client / httpx, transient?, retry_after)
CLASSIFIED: list[tuple[Exception, bool, Any]] = [
    (_api_error(429, "rate_limited", {"Retry-After": "12"}), True, 12.0),
    (_api_error(429, "rate_limited"), True, None),
    (_api_error(500, "internal_server_error"), True, None),
    (_api_error(503, "service_unavailable"), True, None),
    (_api_error(504, "gateway_timeout"), True, None),
    (_api_error(409, "conflict_error"), True, None),
    (UnknownHTTPResponseError(502, raw_body_text="<html>bad gateway</html>"), True, None),
    (UnknownHTTPResponseError(529, headers=httpx.Headers({"Retry-After": "3"})), True, 3.0),
    (RequestTimeoutError(), True, None),
    (httpx.ConnectError("refused"), True, None),
    (httpx.RemoteProtocolError("Server disconnected"), True, None),
    (_api_error(400, "validation_error"), False, None),
    (_api_error(400, "invalid_json"), False, None),
    (UnknownHTTPResponseError(400, raw_body_text='{"code":"missing_version"}'), False, None),
    (_api_error(401, "unauthorized"), False, None),
    (_api_error(403, "restricted_resource"), False, None),
    (_api_error(404, "object_not_found"), False, None),
]


@pytest.mark.parametrize(("error", "transient", "retry_after"), CLASSIFIED)
def test_classify_error(error: Exception, transient: bool, retry_after: Any) -> None:
    classified = classify_error(error)
    assert isinstance(classified, TransientNotionError if transient else PermanentNotionError)
    if transient:
        assert isinstance(classified, TransientNotionError)
        assert classified.retry_after == retry_after
    if isinstance(error, APIResponseError):
        assert classified.message == f"notion says {error.code.value}"
