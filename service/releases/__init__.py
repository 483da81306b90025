"""Releases: apps and trains, the lifecycle, checklists, sign-offs, the meeting view."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the release pages and API."""
