"""Fixtures shared by the release tests (apps with a real git repository)."""

from tests.service.releases.release_fixtures import git_repo, people, pos  # noqa: F401
