"""The demo fleet seeds once and is what the pages show."""

from __future__ import annotations

from sqlmodel import func, select

from beta.models import Device, Store, StoreFreeze
from service.beta import demo


def test_demo_fleet(session):
    lines = demo.seed(session)
    session.commit()
    assert "300 stores" in lines[0]
    assert session.exec(select(func.count()).select_from(Store)).one() == 300
    in_beta = session.exec(select(func.count()).select_from(Store).where(Store.in_beta)).one()
    assert in_beta == 15
    assert session.exec(select(func.count()).select_from(Device)).one() >= 300
    assert session.exec(select(func.count()).select_from(StoreFreeze)).one() == 2
    assert demo.seed(session) == ["fleet: demo stores already present"]
