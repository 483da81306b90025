"""Every ``relgov`` command (each a thin wrapper around a plain function), and the core ones:
``run``, ``db``, ``users``, ``tokens``, ``demo`` and ``version``.

:data:`COMMANDS` is what ``relgov`` offers (``service.cli``) and what ``app.cli`` holds
(``service.wiring``). A command that needs the app builds it when it runs
(``with_appcontext``), never when ``relgov --help`` lists it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import ScriptInfo, routes_command, shell_command, with_appcontext
from sqlmodel import Session, col, select
from werkzeug.serving import run_simple

from service import db, migrate, security, version
from service.adoption.cli import adoption_group
from service.auth import (
    AuthError,
    create_user,
    hand_over_token,
    issue_token,
    log_out_everywhere,
    revoke_token,
    update_user,
    verify_password,
)
from service.beta.cli import stores_group
from service.console import cli_actor, fail
from service.demo import DEMO_ADMIN, seed_demo
from service.models import ROLES, SCOPES, ApiToken, User
from service.ops import backup
from service.publishing.cli import notes_group, notion_group, worker_command
from service.search.cli import search_group


@click.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def run_command(host: str, port: int) -> None:
    """Serve the app with the development server (use gunicorn in production)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    url = f"http://{host}:{port}/"
    click.echo(f"\n  Release governance is running at {url}")
    with db.session_scope() as session:
        admin = session.exec(select(User).where(User.email == DEMO_ADMIN[0])).first()
        if admin is not None and verify_password(admin, DEMO_ADMIN[1]):
            click.echo(f"  Log in as {DEMO_ADMIN[0]} with password {DEMO_ADMIN[1]}")
    click.echo("  Press Ctrl+C to stop.\n")
    for starter in app.extensions.get("relgov.background", []):
        threading.Thread(target=starter, args=(app,), daemon=True).start()
    run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)


@click.group("db")
def db_group() -> None:
    """Database schema (Alembic migrations)."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Create or migrate the schema to the latest revision."""
    migrate.upgrade(db.engine(), revision)
    click.echo(f"database at revision {migrate.current_revision(db.engine())}")


@db_group.command("backup")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write it (default: INSTANCE/backups/relgov-<UTC time>.dump|.sqlite3).",
)
@with_appcontext
def db_backup(output: Path | None) -> None:
    """Back up the database (pg_dump custom format, or SQLite's online backup)."""
    url = current_app.config["SQLALCHEMY_DATABASE_URL"]
    target = output or backup.default_path(Path(current_app.instance_path) / "backups", url)
    try:
        result = backup.backup(url, target)
    except backup.BackupError as exc:
        fail(str(exc))
    click.echo(f"wrote {result.path} ({result.size:,} bytes)")


@db_group.command("restore")
@click.argument("backup_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask: replace the database's contents.")
@with_appcontext
def db_restore(backup_file: Path, yes: bool) -> None:
    """Replace the database's contents with a backup (stop web and worker processes first)."""
    url = current_app.config["SQLALCHEMY_DATABASE_URL"]
    shown = db.engine().url.render_as_string(hide_password=True)
    if not yes:
        click.confirm(f"Replace everything in {shown} with {backup_file}?", abort=True)
    db.engine().dispose()
    try:
        backup.restore(url, backup_file)
    except backup.BackupError as exc:
        fail(str(exc))
    click.echo(f"restored {backup_file} into {shown}; now run `relgov db upgrade`")


@db_group.command("check")
@with_appcontext
def db_check() -> None:
    """Fail when the models have changes no migration covers."""
    diffs = migrate.pending_differences(db.engine())
    if diffs:
        for diff in diffs:
            click.echo(f"  {diff}", err=True)
        fail(f"{len(diffs)} model change(s) have no migration")
    click.echo("migrations match the models")


@db_group.command("revision")
@click.option("-m", "--message", required=True)
@with_appcontext
def db_revision(message: str) -> None:
    """Autogenerate a migration from the models (review it before committing)."""
    migrate.revision(db.engine(), message)


@db_group.command("regenerate-initial")
def db_regenerate_initial() -> None:
    """Rewrite the one initial migration from the models (before the first deployment)."""
    click.echo(f"wrote {migrate.regenerate_initial()}")


@click.group("users")
def users_group() -> None:
    """People who log in, and their roles."""


@users_group.command("create")
@click.option("--email", required=True)
@click.option("--role", default="viewer", show_default=True, type=click.Choice(ROLES))
@click.option("--name", default="")
@click.option(
    "--password", prompt=True, hide_input=True, confirmation_prompt=True, help="Prompted if absent."
)
@with_appcontext
def users_create(email: str, role: str, name: str, password: str) -> None:
    """Add a person with a role."""
    try:
        with db.session_scope() as session:
            user = create_user(
                session=session,
                email=email,
                name=name,
                role=role,
                password=password,
                actor=cli_actor(),
            )
            click.echo(f"created {user.email} ({user.role})")
    except AuthError as exc:
        fail(str(exc))


@users_group.command("set-role")
@click.option("--email", required=True)
@click.option("--role", required=True, type=click.Choice(ROLES))
@with_appcontext
def users_set_role(email: str, role: str) -> None:
    """Change a person's role."""
    _change_user(email, role=role)


@users_group.command("disable")
@click.option("--email", required=True)
@with_appcontext
def users_disable(email: str) -> None:
    """Stop a person from logging in (their history stays)."""
    _change_user(email, active=False)


@users_group.command("logout-everywhere")
@click.option("--email", required=True)
@with_appcontext
def users_logout_everywhere(email: str) -> None:
    """End every session of a person (they must log in again)."""
    with db.session_scope() as session:
        user = _user(session, email)
        ended = log_out_everywhere(session=session, user=user, actor=cli_actor())
        click.echo(f"{user.email}: {ended} session{'s' if ended != 1 else ''} ended")


@users_group.command("lift-pause")
@click.option("--email", required=True)
@with_appcontext
def users_lift_pause(email: str) -> None:
    """Lift the pause on a person's login after failed attempts (from every address)."""
    with db.session_scope() as session:
        user = _user(session, email)
        lifted = security.lift_login_pauses(session, email=user.email, actor=cli_actor())
        where = ", ".join(pause.address for pause in lifted) or "none was paused"
        click.echo(f"{user.email}: login pause lifted ({where})")


def _user(session: Session, email: str) -> User:
    user = session.exec(select(User).where(User.email == email.strip().lower())).first()
    if user is None:
        fail(f"no user with email {email}")
    return user


def _change_user(email: str, **changes: object) -> None:
    try:
        with db.session_scope() as session:
            user = _user(session, email)
            update_user(session=session, user=user, actor=cli_actor(), **changes)  # type: ignore[arg-type]
            click.echo(f"{user.email}: role {user.role}, {'active' if user.active else 'disabled'}")
    except AuthError as exc:
        fail(str(exc))


@users_group.command("list")
@with_appcontext
def users_list() -> None:
    """List everyone."""
    with db.session_scope() as session:
        for user in session.exec(select(User).order_by(User.email)):
            state = "active" if user.active else "disabled"
            click.echo(f"{user.email:40} {user.role:16} {state}")


@click.group("tokens")
def tokens_group() -> None:
    """API tokens for CI and store devices."""


@tokens_group.command("create")
@click.option("--name", required=True)
@click.option("--scope", "scopes", multiple=True, required=True, type=click.Choice(SCOPES))
@click.option("--by", "by_email", required=True, help="Email of the admin issuing it.")
@click.option("--expires-in-days", type=int, default=None)
@with_appcontext
def tokens_create(
    name: str, scopes: tuple[str, ...], by_email: str, expires_in_days: int | None
) -> None:
    """Issue a token; it is printed once."""
    try:
        with db.session_scope() as session:
            admin = session.exec(select(User).where(User.email == by_email.lower())).first()
            if admin is None or admin.role != "admin":
                fail(f"{by_email} is not an admin")
            assert admin is not None
            token, raw = issue_token(
                session=session,
                name=name,
                scopes=scopes,
                creator=admin,
                expires_in_days=expires_in_days,
            )
    except AuthError as exc:
        fail(str(exc))
    click.echo(raw)
    click.echo(f"(token {token.id}: {', '.join(token.scopes)}; shown once)", err=True)


@tokens_group.command("revoke")
@click.argument("token_id", type=int)
@click.option("--by", "by_email", required=True)
@with_appcontext
def tokens_revoke(token_id: int, by_email: str) -> None:
    """Revoke a token by id."""
    try:
        with db.session_scope() as session:
            admin = session.exec(select(User).where(User.email == by_email.lower())).first()
            token = session.get(ApiToken, token_id)
            if admin is None or admin.role != "admin":
                fail(f"{by_email} is not an admin")
            if token is None:
                fail(f"no token {token_id}")
            assert admin is not None and token is not None
            revoke_token(session=session, token=token, actor=admin)
    except AuthError as exc:
        fail(str(exc))
    click.echo(f"revoked token {token_id}")


@tokens_group.command("list")
@with_appcontext
def tokens_list() -> None:
    """List tokens: id, name, owner and state."""
    with db.session_scope() as session:
        emails = {u.id: u.email for u in session.exec(select(User))}
        for token in session.exec(select(ApiToken).order_by(col(ApiToken.id))):
            if token.revoked_at is not None:
                state = "revoked"
            elif token.suspended_at is not None:
                state = f"suspended ({token.suspended_reason})"
            else:
                state = "expired" if token.expired else "active"
            owner = emails.get(token.owner_id, "?")
            click.echo(f"{token.id:>5} {token.name:30} {owner:30} {state}")


@tokens_group.command("hand-over")
@click.argument("token_id", type=int)
@click.option("--to", "to_email", required=True, help="Email of the admin who will own it.")
@with_appcontext
def tokens_hand_over(token_id: int, to_email: str) -> None:
    """Give a token to another active admin (a suspended token resumes)."""
    try:
        with db.session_scope() as session:
            token = session.get(ApiToken, token_id)
            if token is None:
                fail(f"no token {token_id}")
            owner = _user(session, to_email)
            hand_over_token(session=session, token=token, owner=owner, actor=cli_actor())
            click.echo(f"token {token_id} ({token.name}) now belongs to {owner.email}")
    except AuthError as exc:
        fail(str(exc))


@click.command("demo")
@click.option("--if-empty", is_flag=True, help="Do nothing when people already exist.")
@with_appcontext
def demo_command(if_empty: bool) -> None:
    """Seed demo data: people of every role, and everything built so far."""
    with db.session_scope() as session:
        if if_empty and session.exec(select(User)).first() is not None:
            click.echo("demo data already present")
            return
    report = seed_demo(current_app._get_current_object())  # type: ignore[attr-defined]
    for line in report:
        click.echo(line)


@click.command("version")
def version_command() -> None:
    """Print the service's version."""
    click.echo(f"relgov {version()}")


COMMANDS: tuple[click.Command, ...] = (
    run_command,
    db_group,
    users_group,
    tokens_group,
    demo_command,
    notes_group,
    notion_group,
    worker_command,
    stores_group,
    adoption_group,
    search_group,
    version_command,
    routes_command,
    shell_command,
)


def run(args: Sequence[str], *, load_app: Callable[[], Any]) -> None:
    """``relgov ARGS``: every command of :data:`COMMANDS`; ``load_app`` builds the app for
    the commands that need it."""
    group = click.Group(
        "relgov", help="Release governance: meeting, notes, beta cohort and adoption."
    )
    for command in COMMANDS:
        group.add_command(command)
    info = ScriptInfo(create_app=load_app, set_debug_flag=False, load_dotenv_defaults=False)
    group.main(list(args), prog_name="relgov", obj=info)
