"""Errors the beta package raises; the service maps them to HTTP answers.

Every error names the field it is about (``field``), so a JSON body can say which input was
wrong, and the HTTP status it stands for (``status``): ``InvalidInput`` 422, ``NotFound``
404, ``Conflict`` 409.
"""

from __future__ import annotations


class BetaError(Exception):
    """Base class: ``field`` names the offending input (``""`` when none applies)."""

    status = 422

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(BetaError, ValueError):
    """An input value is malformed or out of range."""


class NotFound(BetaError, LookupError):
    """A store, device, freeze, app or release that does not exist."""

    status = 404


class Conflict(BetaError):
    """The input is well formed but clashes with the current state."""

    status = 409
