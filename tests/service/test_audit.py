import pytest
from sqlmodel import select

from service import audit
from service.audit import AuditLogIsAppendOnly
from service.models import AuditEvent
from tests.builders import make_user


def test_audit_events_cannot_be_updated_or_deleted(session):
    event = audit.record(
        session, actor="test", action="thing.do", subject_type="thing", subject_id=1
    )
    session.commit()
    event.summary = "rewritten"
    with pytest.raises(AuditLogIsAppendOnly):
        session.commit()
    session.rollback()
    session.delete(session.get(AuditEvent, event.id))
    with pytest.raises(AuditLogIsAppendOnly):
        session.commit()


def test_an_event_needs_an_actor(session):
    with pytest.raises(ValueError, match="actor"):
        audit.record(session, actor="", action="x", subject_type="y", subject_id=1)


def test_audit_page_filters(admin_client, session):
    make_user(session, email="q@example.com", role="qa")
    page = admin_client.get("/audit?action=user.create").get_data(as_text=True)
    assert "q@example.com" in page and "user.login" not in page.split("<table")[1]
    page = admin_client.get("/audit?actor=nobody").get_data(as_text=True)
    assert "No events match." in page
    page = admin_client.get("/audit?since=not-a-date").get_data(as_text=True)
    assert "since" in page and "flash-error" in page
    assert len(session.exec(select(AuditEvent)).all()) >= 3
