"""Importing this module registers every API endpoint on ``service.api.bp``."""

from service.api import core  # noqa: F401
