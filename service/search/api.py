"""Search in the JSON API: ``GET /api/v1/search`` and an app's store-facing changes across a
span of versions (``GET /api/v1/apps/{slug}/store-changes``)."""

from __future__ import annotations

from datetime import date

from flask import url_for
from pydantic import BaseModel, Field
from sqlmodel import select

from service import db
from service.api.errors import ApiError
from service.api.operations import Routes
from service.releases.models import App
from service.search import query as search_query
from service.search.index import sources_of
from service.search.models import KINDS

routes = Routes(tag="Search")


class SearchIn(BaseModel):
    q: str = Field(
        min_length=1,
        max_length=200,
        description="words to find, all of them (Japanese or English); "
        '"double quotes" keep a phrase',
    )
    app: str | None = Field(default=None, max_length=32, description="an app's slug")
    kind: str | None = Field(
        default=None,
        max_length=200,
        description="comma-separated kinds: " + ", ".join(KINDS),
    )
    since: date | None = Field(default=None, description="from this day (YYYY-MM-DD)")
    until: date | None = Field(default=None, description="up to this day, included")
    limit: int = Field(default=20, ge=1, le=search_query.MAX_LIMIT)
    offset: int = Field(default=0, ge=0, le=search_query.MAX_OFFSET)


class SearchHitOut(BaseModel):
    kind: str
    kind_label: str
    app: str | None
    app_name: str | None
    version: str | None
    release_id: int | None
    release_state: str | None
    date: date
    section: str
    title: str
    body: str
    title_html: str = Field(description="the title, escaped HTML, matches in <mark>")
    snippet_html: str = Field(
        description="the part of the body with the most matches, escaped HTML, matches in <mark>"
    )
    url: str = Field(description="the notes page (at the entry), the incident or the meeting")
    score: float


class SearchOut(BaseModel):
    q: str
    terms: list[str]
    ignored: list[str] = Field(description="words too short to search for, left out")
    total: int
    limit: int
    offset: int
    results: list[SearchHitOut]


class StoreChangesIn(BaseModel):
    from_version: str | None = Field(default=None, max_length=128, description="included")
    to_version: str | None = Field(default=None, max_length=128, description="included")


class StoreNoteOut(BaseModel):
    section: str
    text: str


class StoreReleaseOut(BaseModel):
    version: str
    release_id: int
    state: str
    date: date
    url: str
    notes: list[StoreNoteOut]


class StoreChangesOut(BaseModel):
    app: str
    from_version: str | None
    to_version: str | None
    releases: list[StoreReleaseOut]


@routes.operation(
    "/search",
    "GET",
    summary="Search notes, store-facing notes, commits, incidents and meeting minutes",
    query=SearchIn,
    response=SearchOut,
    errors=(401, 403, 422),
)
def search(query: SearchIn) -> SearchOut:
    """Every word must be in a result. Words of 3 or more characters match anywhere;
    2-character Japanese words and single kanji match anywhere too; 2-letter ASCII words
    (QR, UI) match whole words. Best first (see the README's *Search*). A filter that is
    not valid is 422 naming it."""
    session = db.session()
    parsed = search_query.parse(query.q)
    filters = search_query.parse_filters(
        session, app=query.app, kind=query.kind, since=query.since, until=query.until
    )
    results = search_query.search(
        session, parsed, filters, sources_of(), limit=query.limit, offset=query.offset
    )
    return SearchOut(
        q=query.q,
        terms=[t.text for t in parsed.terms],
        ignored=list(parsed.ignored),
        total=results.total,
        limit=results.limit,
        offset=results.offset,
        results=[
            SearchHitOut(
                kind=hit.doc.kind,
                kind_label=hit.kind_label,
                app=hit.app.slug if hit.app else None,
                app_name=hit.app.name if hit.app else None,
                version=hit.doc.version,
                release_id=hit.doc.release_id,
                release_state=hit.release_state,
                date=hit.doc.on_date,
                section=hit.doc.section,
                title=hit.doc.title,
                body=hit.doc.body,
                title_html=hit.title_html,
                snippet_html=hit.snippet_html,
                url=hit.url,
                score=hit.score,
            )
            for hit in results.hits
        ],
    )


@routes.operation(
    "/apps/<slug>/store-changes",
    "GET",
    summary="An app's store-facing notes from one version to another, by version",
    query=StoreChangesIn,
    response=StoreChangesOut,
    errors=(401, 403, 422),
)
def store_changes(slug: str, query: StoreChangesIn) -> StoreChangesOut:
    """What a store gets between two versions: each release from ``from_version`` to
    ``to_version`` (both included; either may be left out), in version order, with its
    store-facing notes (the edited ones where the notes were edited). Cancelled and rejected
    releases never reached stores and are left out."""
    session = db.session()
    app = session.exec(select(App).where(App.slug == slug)).first()
    if app is None:
        raise ApiError(404, "not_found", f"no app {slug!r}")
    found = search_query.store_changes(
        session, app, from_version=query.from_version, to_version=query.to_version
    )
    return StoreChangesOut(
        app=app.slug,
        from_version=query.from_version,
        to_version=query.to_version,
        releases=[
            StoreReleaseOut(
                version=item.release.version,
                release_id=item.release.id or 0,
                state=item.release.state,
                date=item.release.created_at.date(),
                url=url_for("notes.notes_page", release_id=item.release.id),
                notes=[StoreNoteOut(section=n.section, text=n.title) for n in item.notes],
            )
            for item in found
        ],
    )
