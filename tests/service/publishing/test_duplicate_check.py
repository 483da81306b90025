"""A second page made while Notion's search lagged longer than the service waited is found
by its publish key by a follow-up job and moved to the trash (issue 19 B)."""

from dataclasses import replace
from datetime import timedelta

import pytest

from service import jobs
from service.settings import Settings
from tests.fakes.notion_fake import Fault, NotionFake
from tests.service.publishing.conftest import approve, jobs_of, later

CREATE = {"method": "POST", "path": r"/v1/pages$"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, notion_create_settle_seconds=5.0)


def test_a_duplicate_made_despite_the_wait_is_trashed_by_a_follow_up(
    app, session, notion: NotionFake, release
):
    clock = [later(10)]
    notion.clock = lambda: clock[0]
    notion.query_lag = timedelta(seconds=120)  # far longer than the 5 s the service waits
    approve(session, release)
    notion.inject(Fault.lost_response(**CREATE))
    job = jobs.run_once(app, now=clock[0])
    assert job.state == "queued"

    clock[0] = job.next_run_at + timedelta(seconds=1)
    job = jobs.run_once(app, now=clock[0])
    assert job.state == "succeeded" and job.result.startswith("created"), job.last_error
    assert len(notion.live_pages()) == 2  # the first one was not found: a second create
    (follow_up,) = [j for j in jobs_of(session, release) if j.state == "queued"]
    assert follow_up.payload["reason"] == "duplicate check"

    # Every minute for 10 minutes a follow-up looks; the search shows the first page
    # after 2 minutes, and the follow-up then trashes it.
    for _ in range(12):
        (follow_up,) = [j for j in jobs_of(session, release) if j.state == "queued"]
        assert follow_up.next_run_at - clock[0] <= timedelta(seconds=62)
        clock[0] = follow_up.next_run_at + timedelta(seconds=1)
        done = jobs.run_once(app, now=clock[0])
        assert done.id == follow_up.id and done.state == "succeeded", done.last_error
        if len(notion.live_pages()) == 1:
            break
    (page,) = notion.live_pages()
    assert page["properties"]["Status"]["select"]["name"] == "Published"
    assert "Kitchen tickets keep their order" in str(notion.block_tree(page["id"]))
    assert clock[0] - later(10) >= timedelta(seconds=120)
