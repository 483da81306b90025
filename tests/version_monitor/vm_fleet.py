"""Builders for the version_monitor tests: a small fleet with readable defaults."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session

from beta.models import Device, Store

NOW = datetime(2024, 7, 10, 12, 0, 0)  # naive UTC, as version_monitor stores it
NOW_AWARE = NOW.replace(tzinfo=UTC)


class Fleet:
    """Builds stores and devices with readable defaults."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.stores: dict[str, Store] = {}

    def store(
        self, external_id: str, *, region: str = "kanto", in_beta: bool = False, name: str = ""
    ) -> Store:
        store = Store(
            external_id=external_id,
            name=name or f"Store {external_id}",
            region=region,
            in_beta=in_beta,
            created_at=NOW_AWARE,
            updated_at=NOW_AWARE,
        )
        self.session.add(store)
        self.session.flush()
        self.stores[external_id] = store
        return store

    def device(self, device_id: str, store: Store, *, kind: str = "pos") -> Device:
        assert store.id is not None
        device = Device(device_id=device_id, store_id=store.id, kind=kind, created_at=NOW_AWARE)
        self.session.add(device)
        self.session.flush()
        return device
