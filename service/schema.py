"""The whole schema: every package's tables, so that ``SQLModel.metadata`` knows them all
(Alembic's migrations and the check that they match the models read it from here)."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlmodel import SQLModel

# Imported for their tables: each module defines its SQLModel classes when imported.
import beta.models
import service.adoption.models
import service.beta.models
import service.incidents.models
import service.jobs.models
import service.meetings.models
import service.models
import service.publishing.models
import service.releases.models
import version_monitor.models

TABLE_MODULES = (
    service.models,
    service.releases.models,
    service.jobs.models,
    service.beta.models,
    service.incidents.models,
    service.meetings.models,
    service.adoption.models,
    service.publishing.models,
    beta.models,
    version_monitor.models,
)


def metadata() -> MetaData:
    """Every table of the service (the modules above are imported, so they are all there)."""
    return SQLModel.metadata
