"""Import every package's tables so that ``SQLModel.metadata`` knows the whole schema."""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData
from sqlmodel import SQLModel

MODEL_MODULES = (
    "service.models",
    "service.releases.models",
    "service.publishing.models",
    "service.fleet.models",
    "service.incidents.models",
    "beta.models",
    "version_monitor.models",
    "service.adoption.models",
)


def load_metadata() -> MetaData:
    for name in MODEL_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return SQLModel.metadata
