"""CSV downloads: the one writer every CSV export of the service goes through.

A spreadsheet opening a CSV runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and,
in some programs, a tab or a carriage return) as a formula: a store named
``=HYPERLINK("http://evil.test","x")`` would become a link in whoever opens the report.
:func:`cell` neutralises such text by putting a ``'`` in front of it (OWASP's advice), which
the spreadsheet shows as text. Numbers stay numbers: an ``int`` or finite ``float`` value,
or text that is just a number (``-3``, ``+1.5``, ``2e3``), is written as it is.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from flask import Response, current_app

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def cell(value: Any) -> Any:
    """``value`` as a CSV cell a spreadsheet will not run: dates as ISO 8601, None as
    empty, numbers as they are, any other text that starts like a formula behind a ``'``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return value
    text = value.isoformat() if isinstance(value, datetime | date) else str(value)
    if text.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as CSV under a header of every key the rows have, in the order they first
    appear (a row without a key has an empty cell there); every cell through :func:`cell`."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    out = io.StringIO()
    writer = csv.writer(out)
    if columns:
        writer.writerow([cell(name) for name in columns])
    for row in rows:
        writer.writerow([cell(row.get(name)) for name in columns])
    return out.getvalue()


def csv_response(rows: Sequence[Mapping[str, Any]], filename: str) -> Response:
    """A CSV download of ``rows`` named ``filename``."""
    response = current_app.response_class(csv_text(rows), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
