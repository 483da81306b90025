"""What every ``relgov`` command shares: who acts (for the audit log) and how it fails."""

from __future__ import annotations

import getpass
import sys
from typing import NoReturn

import click
from flask import current_app


def cli_actor() -> str:
    """The audit actor of a command: ``RELGOV_ACTOR`` when set, else the OS user."""
    actor = current_app.config["RELGOV_SETTINGS"].actor
    return f"cli:{actor or getpass.getuser()}"


def fail(message: str) -> NoReturn:
    """One line on stderr and exit status 2, no traceback."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)
