"""The one error type of the release-notes engine."""

from __future__ import annotations

__all__ = ["NotesError"]


class NotesError(Exception):
    """A problem with the input (repository, refs, range, template, config).

    The message is one line that names the problem; the CLI prints it as ``error: ...``
    and exits with status 2.
    """
