"""``relgov``: the service's command line.

Light by design: ``relgov --help``, ``relgov version`` and ``relgov notes generate`` build no
app and need no configuration; ``version`` and ``notes generate`` do not even load Flask.
Every command that needs the app builds it when it runs (``with_appcontext``, with
:func:`load_app`); a configuration error is one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from service import version
from service.settings import SettingsError


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:2] == ["notes", "generate"]:
        # Imported here, not at the top: generating notes in CI loads the notes engine only,
        # never Flask or the service (as fast as git-cliff as a whole process).
        from release_notes.cli import main as notes_main

        notes_main(args[1:], prog_name="relgov notes", exit_when_written=True)
        return
    if args == ["version"]:  # answered without loading the commands (the same text)
        click.echo(f"relgov {version()}")
        return
    # Imported here, not at the top: the notes path above must not pay for Flask.
    from service.commands import run

    run(args, load_app=load_app)


def load_app() -> Any:
    """The app a command runs against, from the environment."""
    # Imported when a command needs the app, not when ``relgov --help`` lists the commands.
    from service.app import create_app

    try:
        return create_app()
    except SettingsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
