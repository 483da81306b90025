"""``relgov``: the service's command line (a Flask CLI group).

``relgov notes generate`` is dispatched before Flask is even imported, so that generating
notes in CI pays only for the release-notes engine.
"""

from __future__ import annotations

import getpass
import os
import sys
from typing import Any

import click


def main() -> None:
    argv = sys.argv[1:]
    if argv[:2] == ["notes", "generate"]:
        from release_notes.cli import generate

        generate.main(argv[2:], prog_name="relgov notes generate")
        return
    _flask_group()(prog_name="relgov")


def cli_actor() -> str:
    return f"cli:{os.environ.get('RELGOV_ACTOR') or getpass.getuser()}"


def _flask_group() -> click.Group:
    from flask.cli import FlaskGroup

    from service import create_app

    def load_app() -> Any:
        from service.settings import SettingsError

        try:
            return create_app()
        except SettingsError as exc:
            fail(str(exc))

    group = FlaskGroup(
        create_app=load_app,
        add_default_commands=False,
        set_debug_flag=False,
        load_dotenv=False,
        help="Release governance: meeting, notes, beta cohort and adoption.",
    )
    from flask.cli import routes_command, shell_command

    group.add_command(routes_command)
    group.add_command(shell_command)
    return group


def fail(message: str) -> Any:
    """One line on stderr and exit status 2, no traceback."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)
