"""The series endpoint answers what the reference computation gives (the series builder as
it was, over the day totals): JSON and CSV, a point a day and a point a week."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session, col, select

from service.adoption import services
from tests.service.adoption.conftest import World, bearer
from tests.version_monitor.reference_series import reference_dict, reference_series
from version_monitor.adoption import DailyCount
from version_monitor.models import AdoptionDayTotal


def reference(session: Session, world: World, days: int, step: int) -> dict[str, Any]:
    end = world.now.date()
    start = end - timedelta(days=days - 1)
    rows = session.exec(
        select(AdoptionDayTotal)
        .where(AdoptionDayTotal.app == "pos", AdoptionDayTotal.day >= start)
        .where(AdoptionDayTotal.day <= end)
        .order_by(col(AdoptionDayTotal.day), col(AdoptionDayTotal.version_key))
        .order_by(col(AdoptionDayTotal.channel))
    ).all()
    counts = [DailyCount(r.day, r.version, r.version_key, r.channel, r.devices) for r in rows]
    shown = [
        r
        for r in services.release_infos(session, world.app)
        if any(start <= m.date() <= end for m in (r.beta_at, r.rolled_out_at) if m)
    ]
    points = sorted(end - timedelta(days=n) for n in range(0, days, step))
    return reference_dict(reference_series("pos", counts, days=points, releases=shown))


@pytest.mark.parametrize(("days", "step"), [(60, "day"), (365, "day"), (365, "week")])
def test_series_json_and_csv_match_the_reference(
    client: FlaskClient, session: Session, world: World, read_token: str, days: int, step: str
) -> None:
    url = f"/api/v1/apps/pos/adoption/series?days={days}&step={step}"
    response = client.get(url, headers=bearer(read_token))
    assert response.status_code == 200, response.json
    data = response.json
    assert isinstance(data, dict)
    assert data.pop("step") == step
    expected = reference(session, world, days, 7 if step == "week" else 1)
    assert json.dumps(data) == json.dumps(expected)
    assert any(data["channels"]["beta"]["totals"]) and len(data["versions"]) > 2

    got = client.get(url.replace("series?", "series.csv?"), headers=bearer(read_token))
    rows = list(csv.DictReader(io.StringIO(got.get_data(as_text=True))))
    want = [
        {"day": day, "channel": name, "version": version, "devices": str(n), "share": str(s)}
        for name, series in expected["channels"].items()
        for version in expected["versions"]
        for day, n, s in zip(
            expected["days"],
            series["devices"][version],
            series["shares"][version],
            strict=True,
        )
    ]
    assert rows == want
