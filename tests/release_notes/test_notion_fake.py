"""The local Notion rejects what Notion rejects, seen through the real notion-client."""

from typing import Any

import httpx
import pytest
from notion_client import APIErrorCode, APIResponseError, Client
from notion_client.errors import UnknownHTTPResponseError

from tests.fakes.notion_fake import Fault, NotionFake


def para(text: str = "x", **extra: Any) -> dict[str, Any]:
    return {
        "type": "paragraph",
        "paragraph": {"rich_text": [{"type": "text", "text": {"content": text}}], **extra},
    }


def bullet(text: str, children: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"rich_text": [{"type": "text", "text": {"content": text}}]}
    if children:
        body["children"] = children
    return {"type": "bulleted_list_item", "bulleted_list_item": body}


@pytest.fixture
def page_id(notion_client: Client, notion_fake: NotionFake) -> str:
    page = notion_client.pages.create(
        parent={"type": "data_source_id", "data_source_id": notion_fake.data_source_id},
        properties={"Name": {"title": [{"text": {"content": "1.0.0"}}]}},
    )
    return str(page["id"])


def rejected(call: Any, *args: Any, **kwargs: Any) -> APIResponseError:
    with pytest.raises(APIResponseError) as info:
        call(*args, **kwargs)
    return info.value


def deep(levels: int) -> dict[str, Any]:
    block = bullet(f"level {levels}")
    for level in range(levels - 1, 0, -1):
        block = bullet(f"level {level}", [block])
    return block


# (name, children for blocks.children.append, status, fragment of Notion's message)
LIMITS: list[tuple[str, Any, int, str]] = [
    ("101 children", [para() for _ in range(101)], 400, "length should be ≤ `100`"),
    (
        "101 grandchildren",
        [bullet("a", [bullet("b", [para() for _ in range(101)])])],
        400,
        "length should be ≤ `100`",
    ),
    ("three levels of nesting", [deep(4)], 400, "children should be not present"),
    ("text over 2000", [para("a" * 2001)], 400, "text.content.length should be ≤ `2000`"),
    ("emoji over 2000 units", [para("😀" * 1001)], 400, "instead was `2002`"),
    (
        "101 rich text items",
        [{"type": "paragraph", "paragraph": {"rich_text": [{"text": {"content": "a"}}] * 101}}],
        400,
        "rich_text.length should be ≤ `100`",
    ),
    (
        "link over 2000",
        [
            {
                "type": "paragraph",
                "paragraph": {
                    "rich_text": [
                        {
                            "text": {
                                "content": "l",
                                "link": {"url": "https://e.test/" + "a" * 2000},
                            }
                        }
                    ]
                },
            }
        ],
        400,
        "link.url.length should be ≤ `2000`",
    ),
    (
        "relative link",
        [
            {
                "type": "paragraph",
                "paragraph": {"rich_text": [{"text": {"content": "l", "link": {"url": "/x"}}}]},
            }
        ],
        400,
        "Invalid URL for link",
    ),
    (
        "unknown code language",
        [{"type": "code", "code": {"rich_text": [], "language": "py"}}],
        400,
        "language",
    ),
    (
        "table row width",
        [
            {
                "type": "table",
                "table": {
                    "table_width": 2,
                    "children": [{"type": "table_row", "table_row": {"cells": [[]]}}],
                },
            }
        ],
        400,
        "must match the table width",
    ),
    ("table without rows", [{"type": "table", "table": {"table_width": 1}}], 400, "row"),
]


@pytest.mark.parametrize(
    ("children", "status", "fragment"),
    [pytest.param(c, s, f, id=n) for n, c, s, f in LIMITS],
)
def test_append_limits(
    notion_client: Client, page_id: str, children: Any, status: int, fragment: str
) -> None:
    error = rejected(notion_client.blocks.children.append, page_id, children=children)
    assert error.status == status
    assert error.code == APIErrorCode.ValidationError
    assert fragment in str(error)
    assert notion_client.blocks.children.list(page_id)["results"] == []


def test_exactly_at_the_limits_is_accepted(notion_client: Client, page_id: str) -> None:
    children = [bullet("a", [bullet("b", [para() for _ in range(99)] + [para("😀" * 1000)])])]
    children += [para("a" * 2000) for _ in range(98)]
    children.append(
        {"type": "paragraph", "paragraph": {"rich_text": [{"text": {"content": "a"}}] * 100}}
    )
    result = notion_client.blocks.children.append(page_id, children=children)
    assert len(result["results"]) == 100


def test_more_than_1000_blocks_in_one_request(notion_client: Client, page_id: str) -> None:
    children = [bullet("p", [para() for _ in range(9)]) for _ in range(100)]  # 1000: fine
    notion_client.blocks.children.append(page_id, children=children)
    children[-1] = bullet("p", [para() for _ in range(10)])  # 1001
    error = rejected(notion_client.blocks.children.append, page_id, children=children)
    assert "1000 blocks" in str(error)


def test_body_over_500_kb_is_413(notion_client: Client, page_id: str) -> None:
    children = [
        {"type": "paragraph", "paragraph": {"rich_text": [{"text": {"content": "漢" * 2000}}] * 30}}
        for _ in range(3)
    ]
    error = rejected(notion_client.blocks.children.append, page_id, children=children)
    assert error.status == 413


def test_unknown_parent_is_404(notion_client: Client) -> None:
    missing = "0" * 32
    error = rejected(notion_client.blocks.children.append, missing, children=[para()])
    assert error.status == 404
    assert error.code == APIErrorCode.ObjectNotFound
    error = rejected(
        notion_client.pages.create,
        parent={"type": "data_source_id", "data_source_id": missing},
        properties={},
    )
    assert error.status == 404


def test_unknown_property_and_wrong_type(notion_client: Client, page_id: str) -> None:
    error = rejected(notion_client.pages.update, page_id, properties={"Nope": {"number": 1}})
    assert str(error) == "Nope is not a property that exists."
    error = rejected(notion_client.pages.update, page_id, properties={"Name": {"rich_text": []}})
    assert str(error) == "Name is expected to be title."


def test_trashed_page_cannot_be_edited(notion_client: Client, page_id: str) -> None:
    notion_client.pages.update(page_id, in_trash=True)
    error = rejected(notion_client.blocks.children.append, page_id, children=[para()])
    assert "archived" in str(error)
    error = rejected(
        notion_client.pages.update,
        page_id,
        properties={"Name": {"title": [{"text": {"content": "2"}}]}},
    )
    assert "archived" in str(error)
    notion_client.pages.update(page_id, in_trash=False)
    notion_client.blocks.children.append(page_id, children=[para()])


def test_trashed_block_cannot_be_edited(notion_client: Client, page_id: str) -> None:
    (block,) = notion_client.blocks.children.append(page_id, children=[bullet("a")])["results"]
    notion_client.blocks.delete(block["id"])
    error = rejected(notion_client.blocks.children.append, block["id"], children=[para()])
    assert "archived" in str(error)
    assert notion_client.blocks.children.list(page_id)["results"] == []


def test_missing_version_and_bad_token(notion_fake: NotionFake, page_id: str) -> None:
    with httpx.Client(base_url=notion_fake.base_url) as http:
        response = http.get(
            f"/v1/pages/{page_id}", headers={"Authorization": f"Bearer {notion_fake.token}"}
        )
        assert response.status_code == 400
        assert response.json()["code"] == "missing_version"
        assert response.json()["object"] == "error"
    http = httpx.Client()
    try:
        client = Client(client=http, auth="wrong", base_url=notion_fake.base_url)
        error = rejected(client.pages.retrieve, page_id)
        assert error.status == 401
        assert error.code == APIErrorCode.Unauthorized
    finally:
        http.close()


def test_page_size_and_pagination(notion_client: Client, page_id: str) -> None:
    for start in range(0, 250, 100):
        notion_client.blocks.children.append(
            page_id, children=[para(str(i)) for i in range(start, min(start + 100, 250))]
        )
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        kwargs: dict[str, Any] = {"page_size": 100}
        if cursor:
            kwargs["start_cursor"] = cursor
        result = notion_client.blocks.children.list(page_id, **kwargs)
        seen += [b["paragraph"]["rich_text"][0]["plain_text"] for b in result["results"]]
        pages += 1
        if not result["has_more"]:
            break
        cursor = result["next_cursor"]
    assert seen == [str(i) for i in range(250)]
    assert pages == 3
    for bad in (0, 101):
        error = rejected(notion_client.blocks.children.list, page_id, page_size=bad)
        assert "page_size" in str(error)


def test_nesting_two_levels_is_accepted_and_read_back(notion_client: Client, page_id: str) -> None:
    (top,) = notion_client.blocks.children.append(page_id, children=[deep(3)])["results"]
    assert top["has_children"] is True
    (mid,) = notion_client.blocks.children.list(top["id"])["results"]
    (low,) = notion_client.blocks.children.list(mid["id"])["results"]
    assert low["bulleted_list_item"]["rich_text"][0]["plain_text"] == "level 3"
    assert low["has_children"] is False


def test_schema_update_rejects_unknown_type(notion_client: Client, notion_fake: NotionFake) -> None:
    error = rejected(
        notion_client.data_sources.update,
        notion_fake.data_source_id,
        properties={"X": {"formula_like": {}}},
    )
    assert error.code == APIErrorCode.ValidationError


def test_query_filter_and_sort(notion_client: Client, notion_fake: NotionFake) -> None:
    ds = notion_fake.data_source_id
    for title in ("a", "b", "a"):
        notion_client.pages.create(
            parent={"type": "data_source_id", "data_source_id": ds},
            properties={"Name": {"title": [{"text": {"content": title}}]}},
        )
    result = notion_client.data_sources.query(
        ds,
        filter={"property": "Name", "title": {"equals": "a"}},
        sorts=[{"timestamp": "created_time", "direction": "ascending"}],
    )
    assert len(result["results"]) == 2
    error = rejected(
        notion_client.data_sources.query, ds, filter={"property": "Nope", "title": {"equals": 1}}
    )
    assert "Nope" in str(error)


# (status, exception notion-client raises)
FAULTS = [
    (500, APIResponseError),
    (502, UnknownHTTPResponseError),
    (503, APIResponseError),
    (504, APIResponseError),
    (529, UnknownHTTPResponseError),
]


@pytest.mark.parametrize(("status", "error_type"), FAULTS)
def test_injected_status_faults(
    notion_client: Client, notion_fake: NotionFake, page_id: str, status: int, error_type: type
) -> None:
    notion_fake.inject(Fault.http(status, method="PATCH"))
    with pytest.raises(error_type) as info:
        notion_client.blocks.children.append(page_id, children=[para()])
    assert info.value.status == status
    assert notion_client.blocks.children.list(page_id)["results"] == []  # nothing applied


def test_rate_limit_fault_carries_retry_after(
    notion_client: Client, notion_fake: NotionFake, page_id: str
) -> None:
    notion_fake.inject(Fault.rate_limited(retry_after=7))
    error = rejected(notion_client.pages.retrieve, page_id)
    assert error.code == APIErrorCode.RateLimited
    assert error.headers["retry-after"] == "7"


def test_lost_response_still_applies_the_write(
    notion_client: Client, notion_fake: NotionFake, page_id: str
) -> None:
    notion_fake.inject(Fault.lost_response(method="PATCH", path="/children"))
    with pytest.raises(httpx.RemoteProtocolError):
        notion_client.blocks.children.append(page_id, children=[para("kept")])
    (block,) = notion_client.blocks.children.list(page_id)["results"]
    assert block["paragraph"]["rich_text"][0]["plain_text"] == "kept"


def test_requests_are_recorded(
    notion_client: Client, notion_fake: NotionFake, page_id: str
) -> None:
    notion_fake.reset_requests()
    notion_client.pages.retrieve(page_id)
    notion_client.blocks.children.list(page_id)
    assert notion_fake.count() == 2
    assert notion_fake.count("GET", r"/children$") == 1
    assert [(r.method, r.status) for r in notion_fake.requests] == [("GET", 200), ("GET", 200)]
