"""Every CSV export goes through one writer that a spreadsheet cannot be made to run
(``service/csv_export.py``): text starting with ``= + - @``, a tab or a carriage return gets a
``'`` in front; numbers stay numbers."""

from __future__ import annotations

import csv
import io

import pytest
from flask import Flask
from sqlalchemy import update
from sqlmodel import Session

from beta.models import Device, Store
from service.api.operations import operations_of
from service.csv_export import FORMULA_STARTS, cell, csv_text
from tests.builders import bearer
from tests.service.adoption.conftest import build_world

HYPERLINK = '=HYPERLINK("http://evil.test","x")'
SUM = "@SUM(1+1)"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (HYPERLINK, "'" + HYPERLINK),
        (SUM, "'" + SUM),
        ("=1+1", "'=1+1"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("S001", "S001"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (-3, -3),
        (2.5, 2.5),
        (-0.25, -0.25),
        (True, "True"),
        ("-3", "-3"),
        ("+1.5", "+1.5"),
        ("-2e3", "-2e3"),
        ("-.5", "-.5"),
        (float("-inf"), "'-inf"),
    ],
)
def test_a_cell_that_starts_like_a_formula_is_text_and_numbers_stay_numbers(value, written):
    assert cell(value) == written


def test_the_header_has_every_column_of_every_row():
    # The census rows by region and the stall rows with a store used to lose those columns.
    text = csv_text([{"group": "version", "version": "1.0"}, {"group": "region", "region": SUM}])
    assert text.splitlines() == ["group,version,region", "version,1.0,", "region,,'@SUM(1+1)"]


def csv_exports(app: Flask) -> set[str]:
    """The path of every CSV the API serves (``.csv`` paths and ``?format=csv``)."""
    found = set()
    for op in operations_of(app):
        if op.response == "text/csv":
            found.add(op.rule)
        elif op.query is not None and "format" in op.query.model_fields:
            found.add(op.rule + "?format=csv")
    return found


# Each CSV export, and the hostile values it must neutralise; series and milestones hold
# only versions (which cannot start like a formula), days and numbers.
EXPORTS: dict[str, tuple[str, ...]] = {
    "series": (),
    "census": (SUM,),
    "stragglers": (HYPERLINK, SUM),
    "offline": (HYPERLINK, SUM, "=1+1"),
    "milestones": (),
    "stalls": (HYPERLINK, SUM),
}


def _paths() -> list[str]:
    base = "/apps/<app>/adoption/"
    return [base + name + suffix for name in EXPORTS for suffix in (".csv", "?format=csv")]


def test_the_table_lists_every_csv_export(app: Flask):
    assert csv_exports(app) == set(_paths())


@pytest.fixture
def hostile_world(session: Session):
    """The adoption world, every store named like a formula in a region like one, and every
    device id starting like one (written past the validation, as rows from before it)."""
    world = build_world(session)
    session.execute(update(Store).values(name=HYPERLINK, region=SUM))
    session.execute(update(Device).values(device_id="=1+1" + Device.device_id))
    session.commit()
    return world


@pytest.mark.parametrize("path", _paths())
def test_every_csv_export_neutralises_formulas(client, hostile_world, read_token, path):
    name = path.split("/")[-1].split(".")[0].split("?")[0]
    query = "&max_behind=0" if name == "stragglers" else ""
    url = "/api/v1" + path.replace("<app>", "pos")
    url += query if "?" in url else query.replace("&", "?", 1)
    response = client.get(url, headers=bearer(read_token))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) > 1, f"{url} exported no rows: the test proves nothing"
    cells = [c for row in rows for c in row]
    for value in cells:
        if value.startswith(FORMULA_STARTS):
            float(value)  # only a number may start with + or -
    for hostile in EXPORTS[name]:
        assert any(c.startswith("'" + hostile) for c in cells), (url, hostile)
        assert not any(c.startswith(hostile) for c in cells), (url, hostile)
