"""``relgov search WORDS``, ``relgov search reindex`` and ``relgov search stores``."""

from __future__ import annotations

import html
import json
import re
import sys
import time
from datetime import date
from typing import Any

import click
from flask import current_app, request
from flask.cli import with_appcontext
from sqlmodel import select

from service import audit, db
from service.console import cli_actor, fail
from service.releases.models import App
from service.search import index
from service.search import query as search_query
from service.search.models import KINDS

_MARK = re.compile(r"<mark>(.*?)</mark>", re.S)


def _plain(fragment: str) -> str:
    """A highlighted snippet for the terminal: matches bold (or in [brackets] when piped)."""
    if sys.stdout.isatty():
        marked = _MARK.sub(lambda m: click.style(m.group(1), bold=True), fragment)
    else:
        marked = _MARK.sub(r"[\1]", fragment)
    return html.unescape(marked)


class _SearchGroup(click.Group):
    """``relgov search WORDS...`` searches; ``relgov search reindex | stores`` are commands."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["find", *args]
        return super().parse_args(ctx, args)


@click.group("search", cls=_SearchGroup)
def search_group() -> None:
    """Search notes, commits, incidents and minutes: relgov search WORDS [--app ...]."""


@search_group.command("find")
@click.argument("words", nargs=-1, required=True)
@click.option("--app", help="Only this app (its slug).")
@click.option("--kind", help=f"Only these kinds, comma-separated: {', '.join(KINDS)}.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="From this day.")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), help="Up to this day.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 100))
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@with_appcontext
def find_command(
    words: tuple[str, ...],
    app: str | None,
    kind: str | None,
    since: Any,
    until: Any,
    limit: int,
    as_json: bool,
) -> None:
    """Search (the same as ``relgov search WORDS``); best first."""
    with db.session_scope() as session:
        try:
            parsed = search_query.parse(" ".join(words))
            filters = search_query.parse_filters(
                session,
                app=app,
                kind=kind,
                since=since.date() if since else None,
                until=until.date() if until else None,
            )
        except search_query.SearchError as exc:
            fail(f"{exc.field}: {exc.message}" if exc.field else exc.message)
        # Links are built as the pages build them, for the service's public URL.
        base = current_app.config["RELGOV_SETTINGS"].base_url.rstrip("/")
        with current_app.test_request_context(base_url=base):
            results = search_query.search(session, parsed, filters, index.sources_of(), limit=limit)
            host = request.host_url.rstrip("/")
        if as_json:
            click.echo(json.dumps(_as_json(results), ensure_ascii=False, indent=1, default=str))
            return
        shown = len(results.hits)
        click.echo(f"{results.total:,} results" + (f", the best {shown}:" if shown else ""))
        for hit in results.hits:
            found = hit.doc
            where = " ".join(x for x in (hit.app.slug if hit.app else "", found.version or "") if x)
            click.echo(f"\n{where} · {found.on_date} · {found.section}  ({hit.kind_label})")
            if found.title:
                click.echo("  " + _plain(hit.title_html))
            if found.body:
                click.echo("  " + _plain(hit.snippet_html))
            click.echo(f"  {host}{hit.url}")
        if parsed.ignored:
            click.echo(f"\nleft out (too short): {', '.join(parsed.ignored)}")


def _as_json(results: search_query.Results) -> dict[str, Any]:
    return {
        "terms": [t.text for t in results.query.terms],
        "ignored": list(results.query.ignored),
        "total": results.total,
        "results": [
            {
                "kind": h.doc.kind,
                "app": h.app.slug if h.app else None,
                "version": h.doc.version,
                "date": h.doc.on_date,
                "section": h.doc.section,
                "title": h.doc.title,
                "snippet_html": h.snippet_html,
                "url": h.url,  # the path, as on the pages
                "score": h.score,
            }
            for h in results.hits
        ],
    }


@search_group.command("reindex")
@with_appcontext
def reindex_command() -> None:
    """Rebuild the whole search index from the notes, incidents and meeting minutes."""
    started = time.monotonic()
    with db.session_scope() as session:
        rebuilt = index.rebuild(session, index.sources_of().values())
        audit.record(
            session,
            actor=cli_actor(),
            action="search.reindex",
            subject_type="search_index",
            subject_id=None,
            after={"documents": rebuilt.documents, "owners": rebuilt.owners},
            summary=f"rebuilt the search index: {sum(rebuilt.documents.values()):,} documents",
        )
    seconds = time.monotonic() - started
    for name, documents in rebuilt.documents.items():
        click.echo(f"  {name:10} {rebuilt.owners[name]:>8,} owners {documents:>10,} documents")
    click.echo(f"search index rebuilt in {seconds:.1f} s")


@search_group.command("stores")
@click.option("--app", "slug", required=True, help="The app's slug.")
@click.option("--from", "from_version", help="The first version (included).")
@click.option("--to", "to_version", help="The last version (included).")
@with_appcontext
def stores_command(slug: str, from_version: str | None, to_version: str | None) -> None:
    """The store-facing notes of an app's releases from one version to another."""
    with db.session_scope() as session:
        app = session.exec(select(App).where(App.slug == slug)).first()
        if app is None:
            fail(f"app: no app {slug!r}")
        try:
            found = search_query.store_changes(
                session, app, from_version=from_version, to_version=to_version
            )
        except search_query.SearchError as exc:
            fail(f"{exc.field}: {exc.message}")
        for item in found:
            day: date = item.release.created_at.date()
            click.echo(f"{item.release.version}  ({item.release.state}, {day})")
            for note in item.notes:
                click.echo(f"  - {note.title}  [{note.section}]")
            if not item.notes:
                click.echo("  (no store-facing changes)")
