"""Apps and their checklist templates: create, validate, update, version templates.

Functions take the session and never commit. Every refused input is an :class:`AppError`
whose ``field`` names the input at fault; every change records an audit event with the
values before and after.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from flask import current_app
from sqlmodel import Session, col, select

from incidents.business_days import UnknownCalendar, check_calendar
from service import audit
from service.errors import DomainError
from service.models import ROLES
from service.releases.models import (
    AUTOMATIC_RULES,
    ITEM_MODES,
    RELEASE_KINDS,
    App,
    ChecklistTemplate,
    ChecklistTemplateItem,
    ReleaseItem,
)
from service.releases.repos import RepoPolicy, RepoRefused, check_location
from service.releases.trains import WEEKDAYS, TrainError, parse_train_time, zone
from versioning import InvalidVersion, parse_version

__all__ = [
    "DEFAULT_ITEMS",
    "EDITABLE_FIELDS",
    "AppError",
    "app_snapshot",
    "area_map_text",
    "check_repo_url",
    "create_app_record",
    "current_template",
    "parse_area_map",
    "save_template",
    "template_items",
    "template_versions",
    "update_app_record",
]

SLUG_RE = re.compile(r"[a-z][a-z0-9-]{0,31}")
VERSION_SCHEMES = ("semver", "calver")
EDITABLE_FIELDS = (
    "name",
    "repo_url",
    "default_branch",
    "version_scheme",
    "area_map",
    "pr_url_template",
    "train_weekday",
    "train_time",
    "train_timezone",
    "min_supported_version",
    "rollout_stages",
    "beta_adoption_target",
    "beta_stall_hours",
    "beta_soak_days",
    "incident_score_threshold",
    "holiday_calendar",
    "promotion_gates",
    "separation_of_duties",
    "auto_publish",
)
# Impact on store work (1, 3, 5) × stores affected (1, 2, 3): scores run from 1 to 15.
MAX_INCIDENT_SCORE = 15

# (title, help, owner role, required, mode, rule)
DEFAULT_ITEMS: dict[str, list[tuple[str, str, str, bool, str, str | None]]] = {
    "weekly": [
        (
            "Release notes generated",
            "Notes are generated from the git range of the release.",
            "engineer",
            True,
            "automatic",
            "notes_generated",
        ),
        (
            "Every commit linked to a PR",
            "Commits without a pull request are listed on the release page.",
            "engineer",
            True,
            "automatic",
            "commits_linked",
        ),
        (
            "Regression test pass on POS hardware",
            "The regression suite ran on the store hardware models in the lab.",
            "qa",
            True,
            "manual",
            None,
        ),
        (
            "Store-facing changes reviewed by support",
            "Support read the notes and knows what stores will notice.",
            "support",
            True,
            "manual",
            None,
        ),
        (
            "Rollback plan written",
            "How to go back to the previous version if the rollout is halted.",
            "engineer",
            True,
            "manual",
            None,
        ),
        (
            "Release notes published to Notion",
            "Support searches the notes in Notion.",
            "support",
            False,
            "automatic",
            "notes_published",
        ),
        (
            "Beta adoption ≥ target",
            "Gate for promoting to every store: share of beta devices on this version.",
            "release_manager",
            True,
            "automatic",
            "beta_adoption",
        ),
        (
            "Beta soak ≥ N business days",
            "Gate for promoting to every store: business days since the beta started.",
            "release_manager",
            True,
            "automatic",
            "beta_soak",
        ),
        (
            "No beta incident ≥ threshold",
            "Gate for promoting to every store: incident score = impact × stores affected.",
            "release_manager",
            True,
            "automatic",
            "incident_score",
        ),
    ],
    "hotfix": [
        (
            "Release notes generated",
            "Notes are generated from the git range of the hotfix.",
            "engineer",
            True,
            "automatic",
            "notes_generated",
        ),
        (
            "Fix verified on POS hardware",
            "The failing scenario was reproduced and passes with the fix.",
            "qa",
            True,
            "manual",
            None,
        ),
        (
            "Rollback plan written",
            "How to go back if the hotfix makes things worse.",
            "engineer",
            True,
            "manual",
            None,
        ),
        (
            "Support informed",
            "Support knows which stores asked and what changes for them.",
            "support",
            False,
            "manual",
            None,
        ),
    ],
}


class AppError(DomainError):
    """A refused app or template change; ``field`` names the input at fault."""


# --- field parsing ---------------------------------------------------------------------


def parse_area_map(value: str | Mapping[str, str]) -> dict[str, str]:
    """``scope = Area name`` lines (or a mapping) as a lower-case scope → area map."""
    if isinstance(value, Mapping):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    else:
        pairs = []
        for number, raw in enumerate(value.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            scope, sep, area = line.partition("=")
            if not sep:
                raise AppError(
                    f"line {number}: write scope = Area name, not {line!r}", field="area_map"
                )
            pairs.append((scope, area))
    areas: dict[str, str] = {}
    for scope, area in pairs:
        key, name = scope.strip().lower(), area.strip()
        if not re.fullmatch(r"[a-z0-9][a-z0-9_./-]*", key):
            raise AppError(f"scope {scope.strip()!r} is not a commit scope", field="area_map")
        if not name:
            raise AppError(f"scope {key!r} needs an area name", field="area_map")
        if len(name) > 100:
            raise AppError(f"the area name of {key!r} is too long", field="area_map")
        areas[key] = name
    return areas


def area_map_text(areas: Mapping[str, str]) -> str:
    return "\n".join(f"{scope} = {name}" for scope, name in sorted(areas.items()))


def _parse_stages(value: str | Iterable[int]) -> list[int]:
    parts: Iterable[Any] = (
        [p for p in re.split(r"[,\s]+", value.strip()) if p] if isinstance(value, str) else value
    )
    stages: list[int] = []
    for part in parts:
        try:
            number = int(str(part).strip().rstrip("%"))
        except ValueError:
            raise AppError(
                f"{part!r} is not a whole percentage; write e.g. 10, 50, 100",
                field="rollout_stages",
            ) from None
        stages.append(number)
    if not stages:
        raise AppError("give at least one stage, e.g. 10, 50, 100", field="rollout_stages")
    if any(s <= 0 or s > 100 for s in stages):
        raise AppError("each stage is a percentage from 1 to 100", field="rollout_stages")
    if any(b <= a for a, b in itertools.pairwise(stages)):
        raise AppError("stages must increase, e.g. 10, 50, 100", field="rollout_stages")
    if stages[-1] != 100:
        raise AppError("the last stage must be 100 (every store)", field="rollout_stages")
    return stages


def _int(value: Any, field: str, label: str, low: int, high: int) -> int:
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise AppError(f"{label} must be a whole number, not {value!r}", field=field) from None
    if isinstance(number, bool) or not low <= number <= high:
        raise AppError(f"{label} must be between {low} and {high}", field=field)
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y")
    return bool(value)


def _text(value: Any, field: str, label: str, max_length: int, *, required: bool = False) -> str:
    text = str(value if value is not None else "").strip()
    if required and not text:
        raise AppError(f"{label} is required", field=field)
    if len(text) > max_length:
        raise AppError(f"{label} is longer than {max_length} characters", field=field)
    return text


def _weekday(value: Any) -> int:
    if isinstance(value, str) and not value.strip().isdigit():
        names = [w.lower() for w in WEEKDAYS]
        key = value.strip().lower()
        for index, name in enumerate(names):
            if key and (key == name or key == name[:3]):
                return index
        raise AppError(f"{value!r} is not a weekday", field="train_weekday")
    return _int(value, "train_weekday", "train weekday", 0, 6)


def check_repo_url(url: str) -> str:
    """``url`` when the settings allow it as an app's repository (``RELGOV_REPO_ROOT``,
    ``RELGOV_REPO_ALLOWED_HOSTS``; see ``service/releases/repos.py``), else an
    :class:`AppError` naming ``repo_url``. Empty: the app has no repository yet."""
    url = url.strip()
    if url:
        settings = current_app.config["RELGOV_SETTINGS"]
        try:
            check_location(url, RepoPolicy.from_settings(settings))
        except RepoRefused as exc:
            raise AppError(f"repository refused: {exc}", field="repo_url") from None
    return url


def clean_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and normalise the given app fields (unknown names are refused)."""
    unknown = sorted(set(fields) - set(EDITABLE_FIELDS))
    if unknown:
        raise AppError(f"unknown app setting {unknown[0]!r}", field=unknown[0])
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "name":
            out[name] = _text(value, name, "name", 200, required=True)
        elif name == "repo_url":
            out[name] = check_repo_url(_text(value, name, "repository", 1000))
        elif name == "default_branch":
            branch = _text(value, name, "default branch", 200) or "main"
            if branch.startswith("-") or " " in branch or ".." in branch:
                raise AppError(f"{branch!r} is not a branch name", field=name)
            out[name] = branch
        elif name == "version_scheme":
            scheme = str(value).strip().lower()
            if scheme not in VERSION_SCHEMES:
                raise AppError("version scheme must be semver or calver", field=name)
            out[name] = scheme
        elif name == "area_map":
            out[name] = parse_area_map(value if value is not None else "")
        elif name == "pr_url_template":
            template = _text(value, name, "PR URL template", 500)
            if template:
                if "{number}" not in template:
                    raise AppError(
                        "the PR URL template must contain {number}, e.g. "
                        "https://github.com/org/pos/pull/{number}",
                        field=name,
                    )
                if not template.startswith(("https://", "http://")):
                    raise AppError("the PR URL template must start with https://", field=name)
                try:
                    template.format(number=1)
                except (KeyError, IndexError, ValueError):
                    raise AppError(
                        "the PR URL template may contain only {number} in braces", field=name
                    ) from None
            out[name] = template
        elif name == "train_weekday":
            out[name] = _weekday(value)
        elif name == "train_time":
            try:
                out[name] = parse_train_time(str(value)).strftime("%H:%M")
            except TrainError as exc:
                raise AppError(exc.message, field=name) from None
        elif name == "train_timezone":
            tz_name = str(value).strip()
            try:
                zone(tz_name)
            except TrainError as exc:
                raise AppError(exc.message, field=name) from None
            out[name] = tz_name
        elif name == "min_supported_version":
            text = str(value or "").strip()
            if text:
                try:
                    parse_version(text)
                except InvalidVersion as exc:
                    raise AppError(f"minimum supported version: {exc}", field=name) from None
            out[name] = text or None
        elif name == "rollout_stages":
            out[name] = _parse_stages(value)
        elif name == "beta_adoption_target":
            try:
                target = float(str(value).strip().rstrip("%"))
            except ValueError:
                raise AppError(
                    f"beta adoption target must be a percentage, not {value!r}", field=name
                ) from None
            if not 0 < target <= 100:
                raise AppError("beta adoption target must be above 0 and at most 100", field=name)
            out[name] = target
        elif name == "beta_stall_hours":
            out[name] = _int(value, name, "beta stall hours", 1, 24 * 30)
        elif name == "beta_soak_days":
            out[name] = _int(value, name, "beta soak (business days)", 0, 30)
        elif name == "incident_score_threshold":
            out[name] = _int(value, name, "incident score threshold", 1, MAX_INCIDENT_SCORE)
        elif name == "holiday_calendar":
            try:
                out[name] = check_calendar(str(value or ""))
            except UnknownCalendar as exc:
                raise AppError(str(exc), field=name) from None
        elif name in ("separation_of_duties", "auto_publish", "promotion_gates"):
            out[name] = _bool(value)
    return out


def app_snapshot(app: App) -> dict[str, Any]:
    return {name: getattr(app, name) for name in EDITABLE_FIELDS}


# --- create / update -------------------------------------------------------------------


def create_app_record(session: Session, *, slug: str, name: str, actor: str, **fields: Any) -> App:
    """A new app with v1 weekly and hotfix checklist templates."""
    slug = (slug or "").strip().lower()
    if not SLUG_RE.fullmatch(slug):
        raise AppError(
            "slug must be 1–32 lower-case letters, digits or dashes, starting with a letter",
            field="slug",
        )
    if session.exec(select(App).where(App.slug == slug)).first() is not None:
        raise AppError(f"an app with slug {slug!r} already exists", field="slug")
    # A new app enforces its promotion gates unless told otherwise.
    values = clean_fields({"name": name, "promotion_gates": True, **fields})
    app = App(slug=slug, **values)
    session.add(app)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="app.create",
        subject_type="app",
        subject_id=slug,
        after={"slug": slug, **app_snapshot(app)},
        summary=f"created app {slug} ({app.name})",
    )
    for kind in RELEASE_KINDS:
        save_template(
            session,
            app=app,
            kind=kind,
            items=[
                {
                    "title": title,
                    "help": help_text,
                    "owner_role": role,
                    "required": required,
                    "mode": mode,
                    "rule": rule,
                }
                for title, help_text, role, required, mode, rule in DEFAULT_ITEMS[kind]
            ],
            actor=actor,
        )
    return app


def update_app_record(session: Session, *, app: App, actor: str, **fields: Any) -> App:
    """Change ``app``'s settings; the audit event holds only the fields that changed."""
    values = clean_fields(fields)
    before = app_snapshot(app)
    for name, value in values.items():
        setattr(app, name, value)
    after = app_snapshot(app)
    changed = sorted(k for k in after if after[k] != before[k])
    if not changed:
        return app
    session.add(app)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="app.update",
        subject_type="app",
        subject_id=app.slug,
        before={k: before[k] for k in changed},
        after={k: after[k] for k in changed},
        summary=f"changed {app.slug}: {', '.join(k.replace('_', ' ') for k in changed)}",
    )
    return app


# --- checklist templates ---------------------------------------------------------------


def current_template(session: Session, app: App, kind: str) -> ChecklistTemplate | None:
    """The latest version of ``app``'s checklist for ``kind``."""
    return session.exec(
        select(ChecklistTemplate)
        .where(ChecklistTemplate.app_id == app.id, ChecklistTemplate.kind == kind)
        .order_by(col(ChecklistTemplate.version).desc())
    ).first()


def template_versions(session: Session, app: App, kind: str) -> list[ChecklistTemplate]:
    return list(
        session.exec(
            select(ChecklistTemplate)
            .where(ChecklistTemplate.app_id == app.id, ChecklistTemplate.kind == kind)
            .order_by(col(ChecklistTemplate.version).desc())
        ).all()
    )


def template_items(session: Session, template: ChecklistTemplate) -> list[ChecklistTemplateItem]:
    where = ChecklistTemplateItem.template_id == template.id
    return items_in_order(session, ChecklistTemplateItem, where)


ItemT = TypeVar("ItemT", ChecklistTemplateItem, ReleaseItem)


def items_in_order(session: Session, model: type[ItemT], where: Any) -> list[ItemT]:
    """Checklist items (a template's or a release's) in the order people see them."""
    statement = select(model).where(where).order_by(col(model.position), col(model.id))
    return list(session.exec(statement).all())


def _clean_item(raw: Mapping[str, Any], number: int) -> dict[str, Any]:
    where = f"item {number}"
    title = str(raw.get("title") or "").strip()
    if not title:
        raise AppError(f"{where}: a title is required", field=f"items.{number}.title")
    if len(title) > 300:
        raise AppError(f"{where}: the title is too long", field=f"items.{number}.title")
    help_text = str(raw.get("help") or "").strip()
    if len(help_text) > 2000:
        raise AppError(f"{where}: the help text is too long", field=f"items.{number}.help")
    role = str(raw.get("owner_role") or "").strip()
    if role not in ROLES:
        raise AppError(
            f"{where} ({title}): owner role must be one of {', '.join(ROLES)}",
            field=f"items.{number}.owner_role",
        )
    mode = str(raw.get("mode") or "manual").strip()
    if mode not in ITEM_MODES:
        raise AppError(
            f"{where} ({title}): mode must be manual or automatic", field=f"items.{number}.mode"
        )
    rule = str(raw.get("rule") or "").strip() or None
    if mode == "automatic":
        if rule not in AUTOMATIC_RULES:
            raise AppError(
                f"{where} ({title}): an automatic item needs a rule, one of "
                f"{', '.join(AUTOMATIC_RULES)}",
                field=f"items.{number}.rule",
            )
    else:
        rule = None
    return {
        "title": title,
        "help": help_text,
        "owner_role": role,
        "required": _bool(raw.get("required", True)),
        "mode": mode,
        "rule": rule,
    }


def _item_view(item: ChecklistTemplateItem | Mapping[str, Any]) -> dict[str, Any]:
    get = item.get if isinstance(item, Mapping) else lambda k: getattr(item, k)
    return {k: get(k) for k in ("title", "help", "owner_role", "required", "mode", "rule")}


def save_template(
    session: Session, *, app: App, kind: str, items: list[dict[str, Any]], actor: str
) -> ChecklistTemplate:
    """Save ``items`` (in list order) as a new version of ``app``'s ``kind`` checklist.

    Earlier versions stay: a release keeps the items it was registered with.
    """
    if kind not in RELEASE_KINDS:
        raise AppError(f"kind must be one of {', '.join(RELEASE_KINDS)}", field="kind")
    if not items:
        raise AppError("a checklist needs at least one item", field="items")
    cleaned = [_clean_item(raw, number) for number, raw in enumerate(items, start=1)]
    titles = [c["title"].lower() for c in cleaned]
    for number, title in enumerate(titles, start=1):
        if titles.index(title) != number - 1:
            raise AppError(
                f"item {number}: another item is already called {cleaned[number - 1]['title']!r}",
                field=f"items.{number}.title",
            )
    previous = current_template(session, app, kind)
    previous_items = [_item_view(i) for i in template_items(session, previous)] if previous else []
    if previous is not None and previous_items == cleaned:
        raise AppError("nothing changed: the checklist is the same as the current version")
    template = ChecklistTemplate(
        app_id=app.id or 0,
        kind=kind,
        version=(previous.version + 1) if previous else 1,
        created_by=actor,
    )
    session.add(template)
    session.flush()
    for position, item in enumerate(cleaned, start=1):
        session.add(ChecklistTemplateItem(template_id=template.id or 0, position=position, **item))
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="checklist_template.save",
        subject_type="app",
        subject_id=app.slug,
        before={"kind": kind, "version": previous.version, "items": previous_items}
        if previous
        else None,
        after={"kind": kind, "version": template.version, "items": cleaned},
        summary=f"{app.slug} {kind} checklist v{template.version}: {len(cleaned)} items",
    )
    return template
