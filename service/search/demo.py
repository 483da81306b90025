"""The demo's search index: everything the other demos made, indexed in one pass (the demos
also write some text straight into their tables, past the reactions)."""

from __future__ import annotations

from flask import current_app
from sqlmodel import Session

from service.search import index


def seed(session: Session) -> list[str]:
    rebuilt = index.rebuild(session, index.sources_of(current_app).values())
    total = sum(rebuilt.documents.values())
    parts = ", ".join(f"{n} {name}" for name, n in rebuilt.owners.items())
    return [f"search: {total:,} documents indexed ({parts})"]
