"""Heartbeat ingestion: validate a batch item by item, then apply it set-based.

A heartbeat moves a device's state forward only: one whose ``sent_at`` is not newer than
the newest already applied for that device and app changes nothing, so replaying a batch
is harmless. Unknown devices of known stores are registered in ``beta``'s ``device`` table.
Nothing is committed here: the caller commits (or rolls back) the whole request.

- :mod:`~version_monitor.ingest.validation`: the request's shape and limits, and the checks
  of each item (pure).
- :mod:`~version_monitor.ingest.apply`: applying valid heartbeats, device by device, and
  the store lookups.
- :mod:`~version_monitor.ingest.sql`: the SQL per database (SQLite, PostgreSQL) that reads,
  locks and writes on the driver's own cursor.

Import from here: the modules' other names are this package's own business.
"""

from version_monitor.ingest.apply import (
    IngestResult,
    all_stores,
    ingest,
    ingest_heartbeats,
    lookup_stores,
)
from version_monitor.ingest.sql import FinalStatement, as_column_value, dialect_insert
from version_monitor.ingest.validation import (
    MAX_AGE,
    MAX_BATCH,
    MAX_FUTURE,
    REJECTION_CODES,
    HeartbeatIn,
    MalformedBatch,
    Rejection,
    StoreRef,
    ValidHeartbeat,
    parse_batch,
    validate_batch,
)

# Not in ``__all__`` (it never was), but importable from here as before.
from version_monitor.ingest.validation import DeviceKind as DeviceKind

__all__ = [
    "MAX_AGE",
    "MAX_BATCH",
    "MAX_FUTURE",
    "REJECTION_CODES",
    "FinalStatement",
    "HeartbeatIn",
    "IngestResult",
    "MalformedBatch",
    "Rejection",
    "StoreRef",
    "ValidHeartbeat",
    "all_stores",
    "as_column_value",
    "dialect_insert",
    "ingest",
    "ingest_heartbeats",
    "lookup_stores",
    "parse_batch",
    "validate_batch",
]
