"""Apps: validation naming the field, audited changes, default and versioned checklists, pages."""

from __future__ import annotations

import re
from datetime import date

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session, select

from service.models import AuditEvent
from service.releases import apps as app_records
from service.releases.apps import AppError, create_app_record, save_template, update_app_record
from service.releases.models import App, ChecklistTemplate, TrainSkip
from tests.builders import login, make_user, post_form


@pytest.fixture
def pos(session: Session) -> App:
    app = create_app_record(
        session,
        slug="pos",
        name="POS register",
        actor="user:admin@example.com",
        train_timezone="Asia/Tokyo",
        area_map="order = Ordering\npayment = Payments",
    )
    session.commit()
    return app


def _items(session: Session, app: App, kind: str) -> list[tuple[str, str, bool, str, str | None]]:
    template = app_records.current_template(session, app, kind)
    assert template is not None
    return [
        (i.title, i.owner_role, i.required, i.mode, i.rule)
        for i in app_records.template_items(session, template)
    ]


def test_create_makes_v1_weekly_and_hotfix_checklists(session: Session, pos: App) -> None:
    weekly = _items(session, pos, "weekly")
    assert ("Release notes generated", "engineer", True, "automatic", "notes_generated") in weekly
    assert ("Regression test pass on POS hardware", "qa", True, "manual", None) in weekly
    assert (
        "Release notes published to Notion",
        "support",
        False,
        "automatic",
        "notes_published",
    ) in weekly
    assert {r for *_, r in weekly if r} == {
        "notes_generated",
        "commits_linked",
        "notes_published",
        "beta_adoption",
        "beta_soak",
        "incident_score",
    }
    hotfix = _items(session, pos, "hotfix")
    assert 2 < len(hotfix) < len(weekly)
    assert pos.area_map == {"order": "Ordering", "payment": "Payments"}
    actions = [e.action for e in session.exec(select(AuditEvent)).all()]
    assert actions.count("app.create") == 1
    assert actions.count("checklist_template.save") == 2


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"slug": "POS app"}, "slug", "lower-case"),
        ({"slug": "pos"}, "slug", "already exists"),
        ({"name": "  "}, "name", "required"),
        ({"version_scheme": "roman"}, "version_scheme", "semver or calver"),
        ({"area_map": "order Ordering"}, "area_map", "line 1"),
        ({"area_map": "order = "}, "area_map", "needs an area name"),
        ({"pr_url_template": "https://github.com/o/p/pull/"}, "pr_url_template", "{number}"),
        ({"pr_url_template": "https://x/{number}/{sha}"}, "pr_url_template", "only {number}"),
        ({"train_weekday": "someday"}, "train_weekday", "not a weekday"),
        ({"train_weekday": 7}, "train_weekday", "between 0 and 6"),
        ({"train_time": "2pm"}, "train_time", "HH:MM"),
        ({"train_time": "24:00"}, "train_time", "HH:MM"),
        ({"train_timezone": "Tokyo"}, "train_timezone", "unknown time zone"),
        ({"min_supported_version": "three.twelve"}, "min_supported_version", "minimum"),
        ({"rollout_stages": "10, 50"}, "rollout_stages", "must be 100"),
        ({"rollout_stages": "50, 10, 100"}, "rollout_stages", "increase"),
        ({"rollout_stages": "10, half, 100"}, "rollout_stages", "whole percentage"),
        ({"rollout_stages": "0, 100"}, "rollout_stages", "1 to 100"),
        ({"beta_adoption_target": "120"}, "beta_adoption_target", "at most 100"),
        ({"beta_adoption_target": "lots"}, "beta_adoption_target", "percentage"),
        ({"beta_stall_hours": "0"}, "beta_stall_hours", "between"),
        ({"beta_soak_days": "-1"}, "beta_soak_days", "between"),
        ({"incident_score_threshold": "16"}, "incident_score_threshold", "between 1 and 15"),
        ({"colour": "red"}, "colour", "unknown app setting"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(
    session: Session, pos: App, fields: dict[str, object], field: str, message: str
) -> None:
    events = len(session.exec(select(AuditEvent)).all())
    slug = str(fields.pop("slug", "kds"))
    with pytest.raises(AppError, match=re.escape(message)) as info:
        create_app_record(
            session, slug=slug, name=str(fields.pop("name", "Kitchen")), actor="t", **fields
        )
    assert info.value.field == field
    session.rollback()
    assert session.exec(select(App).where(App.slug == "kds")).first() is None
    assert len(session.exec(select(AuditEvent)).all()) == events


def test_update_records_only_changed_fields(session: Session, pos: App) -> None:
    update_app_record(
        session,
        app=pos,
        actor="user:admin@example.com",
        name="POS register",
        rollout_stages="5, 25, 100",
        min_supported_version="3.8.0",
        train_weekday="Thursday",
    )
    session.commit()
    assert pos.rollout_stages == [5, 25, 100]
    assert pos.train_weekday == 3
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "app.update")).one()
    assert event.before == {
        "min_supported_version": None,
        "rollout_stages": [10, 50, 100],
        "train_weekday": 2,
    }
    assert event.after == {
        "min_supported_version": "3.8.0",
        "rollout_stages": [5, 25, 100],
        "train_weekday": 3,
    }
    update_app_record(session, app=pos, actor="x", name="POS register")  # no change, no event
    session.commit()
    assert len(session.exec(select(AuditEvent).where(AuditEvent.action == "app.update")).all()) == 1


def test_saving_a_template_makes_a_new_version_and_keeps_the_old(
    session: Session, pos: App
) -> None:
    v1 = app_records.current_template(session, pos, "hotfix")
    assert v1 is not None and v1.version == 1
    v1_items = _items(session, pos, "hotfix")
    v2 = save_template(
        session,
        app=pos,
        kind="hotfix",
        items=[
            {"title": "Fix verified", "owner_role": "qa", "mode": "manual"},
            {
                "title": "Notes generated",
                "owner_role": "engineer",
                "mode": "automatic",
                "rule": "notes_generated",
                "required": False,
            },
        ],
        actor="user:admin@example.com",
    )
    session.commit()
    assert v2.version == 2
    assert app_records.current_template(session, pos, "hotfix").id == v2.id  # type: ignore[union-attr]
    assert [t.version for t in app_records.template_versions(session, pos, "hotfix")] == [2, 1]
    assert [
        (i.title, i.owner_role, i.required, i.mode, i.rule)
        for i in app_records.template_items(session, v1)
    ] == v1_items
    assert _items(session, pos, "hotfix") == [
        ("Fix verified", "qa", True, "manual", None),
        ("Notes generated", "engineer", False, "automatic", "notes_generated"),
    ]


@pytest.mark.parametrize(
    ("items", "field", "message"),
    [
        ([], "items", "at least one item"),
        ([{"title": "", "owner_role": "qa"}], "items.1.title", "title is required"),
        ([{"title": "A", "owner_role": "chef"}], "items.1.owner_role", "owner role"),
        ([{"title": "A", "owner_role": "qa", "mode": "automatic"}], "items.1.rule", "needs a rule"),
        (
            [{"title": "A", "owner_role": "qa", "mode": "automatic", "rule": "vibes"}],
            "items.1.rule",
            "needs a rule",
        ),
        (
            [{"title": "A", "owner_role": "qa"}, {"title": "a", "owner_role": "qa"}],
            "items.2.title",
            "already called",
        ),
    ],
)
def test_template_validation(
    session: Session, pos: App, items: list[dict[str, object]], field: str, message: str
) -> None:
    with pytest.raises(AppError, match=re.escape(message)) as info:
        save_template(session, app=pos, kind="weekly", items=items, actor="t")
    assert info.value.field == field
    session.rollback()
    assert app_records.current_template(session, pos, "weekly").version == 1  # type: ignore[union-attr]


# --- pages -----------------------------------------------------------------------------


def test_everyone_sees_apps_but_only_admins_change_them(
    client: FlaskClient, session: Session, pos: App
) -> None:
    make_user(session, email="eng@example.com", role="engineer")
    login(client, "eng@example.com")
    listing = client.get("/apps").get_data(as_text=True)
    assert "POS register" in listing and "Add an app" not in listing
    page = client.get("/apps/pos").get_data(as_text=True)
    assert "Only an admin can change these settings" in page
    assert "<fieldset disabled" in page
    assert client.get("/apps/new").status_code == 403
    token_page = "/apps/pos"
    assert post_form(client, token_page, {"name": "Hacked"}).status_code == 403
    assert (
        post_form(client, "/apps/pos/checklists/weekly", {"rows": "0"}, page=token_page).status_code
        == 403
    )
    assert (
        post_form(
            client,
            "/apps/pos/trains",
            {"action": "skip", "week_of": "2030-01-02", "reason": "x"},
            page=token_page,
        ).status_code
        == 403
    )


def _settings(**overrides: str) -> dict[str, str]:
    data = {
        "name": "POS register",
        "repo_url": "",
        "default_branch": "main",
        "version_scheme": "semver",
        "area_map": "order = Ordering",
        "pr_url_template": "https://github.com/org/pos/pull/{number}",
        "train_weekday": "2",
        "train_time": "14:00",
        "train_timezone": "Asia/Tokyo",
        "min_supported_version": "",
        "rollout_stages": "10, 50, 100",
        "beta_adoption_target": "80",
        "beta_stall_hours": "48",
        "beta_soak_days": "2",
        "incident_score_threshold": "6",
        "separation_of_duties": "y",
    }
    return data | overrides


def test_admin_creates_an_app_through_the_form(admin_client: FlaskClient, session: Session) -> None:
    bad = post_form(admin_client, "/apps/new", _settings(slug="kds", train_timezone="Nowhere/Land"))
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert "unknown time zone" in html and 'aria-invalid="true"' in html
    assert session.exec(select(App).where(App.slug == "kds")).first() is None
    ok = post_form(admin_client, "/apps/new", _settings(slug="kds", name="Kitchen display"))
    assert ok.status_code == 302 and ok.headers["Location"].endswith("/apps/kds")
    app = session.exec(select(App).where(App.slug == "kds")).one()
    assert app.name == "Kitchen display" and app.auto_publish is False
    assert app.pr_url_template.endswith("{number}")
    assert session.exec(select(ChecklistTemplate).where(ChecklistTemplate.app_id == app.id)).all()


def test_admin_edits_settings_and_errors_name_the_field(
    admin_client: FlaskClient, session: Session, pos: App
) -> None:
    bad = post_form(admin_client, "/apps/pos", _settings(rollout_stages="50, 10"))
    assert bad.status_code == 422
    assert "stages must increase" in bad.get_data(as_text=True)
    ok = post_form(admin_client, "/apps/pos", _settings(min_supported_version="3.9.0"))
    assert ok.status_code == 302
    session.refresh(pos)
    assert pos.min_supported_version == "3.9.0"
    assert pos.area_map == {"order": "Ordering"}
    assert pos.separation_of_duties is True and pos.auto_publish is False


def test_coming_trains_skip_and_unskip(
    admin_client: FlaskClient, session: Session, pos: App
) -> None:
    page = admin_client.get("/apps/pos").get_data(as_text=True)
    weeks = re.findall(r'name="week_of" value="([0-9-]+)"', page)
    assert len(weeks) == 6
    assert "14:00 JST" in page
    no_reason = post_form(
        admin_client,
        "/apps/pos/trains",
        {"action": "skip", "week_of": weeks[1], "reason": ""},
        page="/apps/pos",
    )
    assert no_reason.status_code == 302
    assert "say why" in admin_client.get("/apps/pos").get_data(as_text=True).lower()
    assert session.exec(select(TrainSkip)).first() is None
    post_form(
        admin_client,
        "/apps/pos/trains",
        {"action": "skip", "week_of": weeks[1], "reason": "Golden Week freeze"},
        page="/apps/pos",
    )
    skip = session.exec(select(TrainSkip)).one()
    assert skip.week_of == date.fromisoformat(weeks[1])
    page = admin_client.get("/apps/pos").get_data(as_text=True)
    assert "Golden Week freeze" in page and "skipped" in page
    post_form(
        admin_client,
        "/apps/pos/trains",
        {"action": "unskip", "week_of": weeks[1]},
        page="/apps/pos",
    )
    assert session.exec(select(TrainSkip)).first() is None


def test_template_editor_reorders_adds_removes_as_new_version(
    admin_client: FlaskClient, session: Session, pos: App
) -> None:
    page = admin_client.get("/apps/pos/checklists/hotfix").get_data(as_text=True)
    assert "Save as version 2" in page
    current = _items(session, pos, "hotfix")
    form: dict[str, str] = {"rows": str(len(current) + 1)}
    for index, (title, role, required, mode, rule) in enumerate(current):
        form |= {
            f"title-{index}": title,
            f"owner_role-{index}": role,
            f"mode-{index}": mode,
            f"rule-{index}": rule or "",
            f"position-{index}": str(len(current) - index),  # reverse the order
        }
        if required:
            form[f"required-{index}"] = "on"
    form["remove-0"] = "on"
    last = len(current)
    form |= {
        f"title-{last}": "Store manager told",
        f"help-{last}": "Call the pilot stores",
        f"owner_role-{last}": "support",
        f"mode-{last}": "manual",
        f"position-{last}": "0",
    }
    response = post_form(admin_client, "/apps/pos/checklists/hotfix", form)
    assert response.status_code == 302
    saved = _items(session, pos, "hotfix")
    assert saved[0] == ("Store manager told", "support", False, "manual", None)
    assert [s[0] for s in saved[1:]] == [c[0] for c in reversed(current[1:])]
    old = admin_client.get("/apps/pos/checklists/hotfix?version=1").get_data(as_text=True)
    assert "You are looking at version 1" in old and current[0][0] in old


def test_template_editor_refuses_bad_rule_and_keeps_the_rows(
    admin_client: FlaskClient, session: Session, pos: App
) -> None:
    form = {
        "rows": "1",
        "title-0": "Adoption gate",
        "owner_role-0": "release_manager",
        "mode-0": "automatic",
        "rule-0": "",
        "position-0": "1",
    }
    response = post_form(admin_client, "/apps/pos/checklists/weekly", form)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "needs a rule" in html and 'value="Adoption gate"' in html
    assert app_records.current_template(session, pos, "weekly").version == 1  # type: ignore[union-attr]


def test_unknown_app_or_kind_is_404(admin_client: FlaskClient, pos: App) -> None:
    assert admin_client.get("/apps/nope").status_code == 404
    assert admin_client.get("/apps/pos/checklists/monthly").status_code == 404
    assert admin_client.get("/apps/pos/checklists/weekly?version=9").status_code == 404
