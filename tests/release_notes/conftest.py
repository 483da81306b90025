"""Fixtures for the release_notes tests."""

from tests.fakes.notion_fixtures import (  # noqa: F401
    fake_clock,
    notion_client,
    notion_fake,
    notion_publisher,
)
