"""Search pages: the results of the box every page shows in its header, and an app's
store-facing changes across a span of versions.

Snippets and titles come highlighted as escaped HTML (:func:`service.search.text.highlight`:
every character of the document is escaped, only ``<mark>`` is added), so they are marked
safe here.
"""

from __future__ import annotations

from datetime import date

from flask import Blueprint, render_template, request
from markupsafe import Markup
from sqlmodel import select

from service import db
from service.auth import login_required
from service.releases.models import App
from service.search import query as search_query
from service.search.index import sources_of
from service.search.models import KIND_LABELS, KINDS

bp = Blueprint("search", __name__)
PER_PAGE = 20


def _apps() -> list[App]:
    return list(db.session().exec(select(App).order_by(App.name)).all())


def _day(name: str, errors: dict[str, str]) -> date | None:
    value = request.args.get(name, "").strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors[name] = "not a date (YYYY-MM-DD)"
        return None


def _page() -> int:
    value = request.args.get("page", "1")
    return max(1, min(int(value), 500)) if value.isdigit() else 1


@bp.app_template_filter("marked")
def _marked(html: str) -> Markup:
    """Text :func:`~service.search.text.highlight` escaped, with its ``<mark>`` tags."""
    return Markup(html)  # every character was escaped by highlight()


@bp.get("/search")
@login_required
def search_page() -> tuple[str, int]:
    session = db.session()
    args = {k: request.args.get(k, "").strip() for k in ("q", "app", "kind", "since", "until")}
    errors: dict[str, str] = {}
    since, until = _day("since", errors), _day("until", errors)
    page = _page()
    results = None
    if args["q"] or any(args[k] for k in ("app", "kind", "since", "until")):
        try:
            parsed = search_query.parse(args["q"])
        except search_query.SearchError as exc:
            errors["q"] = exc.message
        try:
            filters = search_query.parse_filters(
                session, app=args["app"], kind=args["kind"], since=since, until=until
            )
        except search_query.SearchError as exc:
            errors[exc.field or "q"] = exc.message
        if not errors:
            results = search_query.search(
                session,
                parsed,
                filters,
                sources_of(),
                limit=PER_PAGE,
                offset=(page - 1) * PER_PAGE,
            )
    return render_template(
        "search/results.html",
        args=args,
        errors=errors,
        results=results,
        page=page,
        per_page=PER_PAGE,
        apps=_apps(),
        kinds=[(k, KIND_LABELS[k]) for k in KINDS],
    ), (422 if errors else 200)


@bp.get("/search/stores")
@login_required
def store_changes() -> tuple[str, int]:
    session = db.session()
    apps = _apps()
    args = {k: request.args.get(k, "").strip() for k in ("app", "from_version", "to_version")}
    errors: dict[str, str] = {}
    app = next((a for a in apps if a.slug == args["app"]), None)
    found = None
    if args["app"] and app is None:
        errors["app"] = f"no app {args['app']!r}"
    elif app is not None:
        try:
            found = search_query.store_changes(
                session,
                app,
                from_version=args["from_version"],
                to_version=args["to_version"],
            )
        except search_query.SearchError as exc:
            errors[exc.field or "app"] = exc.message
    versions = search_query.app_versions(session, app) if app is not None else []
    return render_template(
        "search/stores.html",
        args=args,
        errors=errors,
        app=app,
        apps=apps,
        found=found,
        note_count=sum(len(item.notes) for item in found or ()),
        versions=versions,
    ), (422 if errors else 200)
