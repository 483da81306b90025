"""Approve → queued → worker → one page in (fake) Notion; edits coalesce; unchanged skips."""

from sqlmodel import select

from service import jobs
from service.models import AuditEvent
from service.publishing import notion_publish
from service.releases import lifecycle
from service.releases.notes import note_for
from tests.service.publishing.conftest import (
    MANAGER,
    approve,
    jobs_of,
    later,
    make_release,
)


def test_approval_queues_and_the_worker_publishes_one_complete_page(app, session, notion, release):
    approve(session, release)
    (job,) = jobs_of(session, release)
    assert (job.kind, job.state, job.attempts) == ("notion_publish", "queued", 0)
    assert note_for(session, release).publish_state == "queued"
    assert jobs.run_once(app) is None  # debounced: not due yet

    done = jobs.run_once(app, now=later(10))
    assert done is not None and done.state == "succeeded", done.last_error
    (page,) = notion.live_pages()
    props = page["properties"]
    assert props["Version"]["title"][0]["plain_text"] == "3.12.0"
    assert props["App"]["select"]["name"] == "POS register"
    assert props["Status"]["select"]["name"] == "Published"
    assert props["Commits"]["number"] == 12
    assert props["Breaking changes"]["number"] == 1
    assert props["Release link"]["url"] == f"https://relgov.example.com/releases/{release.id}"
    assert props["Notes hash"]["rich_text"][0]["plain_text"].startswith("sha256:")
    text = str(notion.block_tree(page["id"]))
    assert "Receipts print the store name again" in text
    assert "approved, not yet in stores" in text

    note = note_for(session, release)
    assert note.publish_state == "published"
    assert note.notion_page_id == page["id"]
    assert note.notion_url == page["url"]
    stored = props["Notes hash"]["rich_text"][0]["plain_text"]
    assert note.published_hash == stored.removeprefix("sha256:")
    assert note.last_publish_error is None
    actions = session.exec(
        select(AuditEvent.action).where(AuditEvent.subject_id == str(release.id))
    )
    assert {"notes.publish_queued", "notes.published"} <= set(actions.all())


def test_edits_coalesce_into_one_publish_that_updates_the_same_page(app, session, notion, release):
    approve(session, release)
    jobs.run_once(app, now=later(10))
    (page,) = notion.live_pages()
    notion.reset_requests()

    note = note_for(session, release)
    for n in range(3):
        note.edited_markdown = f"# 3.12.0\n\nEdited {n} times.\n"
        session.add(note)
        assert notion_publish.notes_edited(session, release, "user:writer@example.com")
        session.commit()
    queued = [j for j in jobs_of(session, release) if j.state == "queued"]
    assert len(queued) == 1

    done = jobs.run_once(app, now=later(70))
    assert done is not None and done.state == "succeeded"
    assert done.result is not None and done.result.startswith("updated")
    assert jobs.run_once(app, now=later(200)) is None  # nothing else queued
    (again,) = notion.live_pages()
    assert again["id"] == page["id"]
    assert notion.count("POST", r"/v1/pages$") == 0
    assert "Edited 2 times." in str(notion.block_tree(page["id"]))


def test_debounce_moves_the_queued_job_but_not_past_a_minute(app, session, notion, release):
    approve(session, release)
    (job,) = jobs_of(session, release)
    first = job.next_run_at
    notion_publish.notes_edited(session, release, "user:w@example.com")
    session.commit()
    (moved,) = jobs_of(session, release)
    assert moved.id == job.id and moved.next_run_at >= first
    assert moved.next_run_at <= moved.created_at + jobs.MAX_DEBOUNCE


def test_unchanged_note_is_skipped_by_hash(app, session, notion, release):
    approve(session, release)
    jobs.run_once(app, now=later(10))
    notion.reset_requests()
    notion_publish.request_publish(session, release, actor="user:rm@example.com")
    session.commit()
    done = jobs.run_once(app, now=later(11))
    assert done is not None and done.result is not None and done.result.startswith("skipped")
    assert notion.count("PATCH") == 0
    assert note_for(session, release).publish_state == "published"


def test_later_transitions_bring_the_page_up_to_date(app, session, notion, release):
    approve(session, release)
    jobs.run_once(app, now=later(10))
    lifecycle.transition(session, release, "start_beta", actor=MANAGER)
    session.commit()
    queued = [j for j in jobs_of(session, release) if j.state == "queued"]
    assert len(queued) == 1
    assert jobs.run_once(app, now=later(10)).state == "succeeded"
    (page,) = notion.live_pages()
    assert "in beta stores" in str(notion.block_tree(page["id"]))


def test_transitions_before_publishing_do_not_queue(app, session, notion, release):
    lifecycle.transition(session, release, "submit", actor=MANAGER)
    session.commit()
    assert jobs_of(session, release) == []


def test_auto_publish_off_queues_nothing(app, session, notion):
    release = make_release(session, slug="kds", auto_publish=False)
    approve(session, release)
    assert jobs_of(session, release) == []
    assert notion_publish.notes_edited(session, release, "user:w@example.com") is None
    assert note_for(session, release).publish_state == "draft"


def test_release_without_notes_is_refused(app, session, notion):
    release = make_release(session, with_note=False)
    approve(session, release)
    assert jobs_of(session, release) == []
    try:
        notion_publish.request_publish(session, release, actor="user:x")
    except notion_publish.PublishRefused as exc:
        assert "no release notes" in str(exc)
    else:
        raise AssertionError("expected PublishRefused")
