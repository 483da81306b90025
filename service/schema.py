"""The whole schema: every package's tables, so that ``SQLModel.metadata`` knows them all
(Alembic's migrations and the check that they match the models read it from here)."""

from __future__ import annotations

from collections.abc import Mapping

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
import service.notifications.models
import service.publishing.models
import service.releases.models
import service.search.models
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
    service.notifications.models,
    service.search.models,
    beta.models,
    version_monitor.models,
)


# Made by hand in migrations, described by no model (the search feature's full-text indexes):
# the check that the migrations match the models, and autogenerate, leave them alone.
UNMODELLED = frozenset((*service.search.models.FTS_TABLES, *service.search.models.PG_INDEXES))


def include_name(name: str | None, type_: str, _parents: Mapping[str, str | None]) -> bool:
    """Alembic's ``include_name`` hook: False for what :data:`UNMODELLED` names (an FTS5
    table's shadow tables too: ``search_fts_data`` ...)."""
    if name is None:
        return True
    if type_ == "table":
        return not any(name == t or name.startswith(f"{t}_") for t in UNMODELLED)
    return name not in UNMODELLED


def metadata() -> MetaData:
    """Every table of the service (the modules above are imported, so they are all there)."""
    return SQLModel.metadata
