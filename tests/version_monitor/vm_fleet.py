"""Builders for the version_monitor tests: a small fleet with readable defaults."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import Session

from beta.models import Device, Store
from version_monitor.models import DeviceState, VersionChange
from versioning.storage_key import key_of

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

    def history(
        self,
        device: Device,
        changes: list[tuple[datetime, str]],
        *,
        last_seen: datetime,
        app: str = "pos",
        channel: str | None = None,
    ) -> DeviceState:
        """A device's state and change log as ingest would have left them."""
        assert device.id is not None
        store = next(s for s in self.stores.values() if s.id == device.store_id)
        previous: str | None = None
        for at, version in changes:
            self.session.add(
                VersionChange(
                    device_id=device.id,
                    app=app,
                    store_id=device.store_id,
                    from_version=previous,
                    to_version=version,
                    to_key=key_of(version),
                    at=at,
                )
            )
            previous = version
        since, version = changes[-1]
        state = DeviceState(
            device_id=device.id,
            app=app,
            store_id=device.store_id,
            device_kind=device.kind,
            channel=channel or ("beta" if store.in_beta else "stable"),
            version=version,
            version_key=key_of(version),
            version_since=since,
            first_seen=changes[0][0],
            last_seen=last_seen,
            last_sent_at=last_seen,
            received_at=last_seen,
        )
        self.session.add(state)
        self.session.flush()
        return state
