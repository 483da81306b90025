from datetime import UTC, datetime, timedelta, timezone

import pytest
import time_machine

import utc

JST = timezone(timedelta(hours=9))
NEW_YORK = timezone(timedelta(hours=-5))
NAIVE = datetime(2024, 7, 1, 0, 30)  # means 2024-07-01 00:30 UTC

# (input, aware UTC, naive UTC)
TABLE = [
    (NAIVE, NAIVE.replace(tzinfo=UTC), NAIVE),
    (NAIVE.replace(tzinfo=UTC), NAIVE.replace(tzinfo=UTC), NAIVE),
    (datetime(2024, 7, 1, 9, 30, tzinfo=JST), NAIVE.replace(tzinfo=UTC), NAIVE),
    (datetime(2024, 6, 30, 19, 30, tzinfo=NEW_YORK), NAIVE.replace(tzinfo=UTC), NAIVE),
    (
        datetime(2024, 12, 31, 23, 59, 59, 999999),
        datetime(2024, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2024, 12, 31, 23, 59, 59, 999999),
    ),
    (
        datetime(2025, 1, 1, 8, 59, 59, 999999, tzinfo=JST),
        datetime(2024, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2024, 12, 31, 23, 59, 59, 999999),
    ),
]


@pytest.mark.parametrize(("moment", "expected", "_naive"), TABLE)
def test_aware(moment: datetime, expected: datetime, _naive: datetime) -> None:
    result = utc.aware(moment)
    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize(("moment", "_aware", "expected"), TABLE)
def test_naive(moment: datetime, _aware: datetime, expected: datetime) -> None:
    result = utc.naive(moment)
    assert result == expected
    assert result.tzinfo is None


@pytest.mark.parametrize(("moment", "_aware", "expected"), [*TABLE, (None, None, None)])
def test_naive_or_none(
    moment: datetime | None, _aware: datetime | None, expected: datetime | None
) -> None:
    assert utc.naive_or_none(moment) == expected


@pytest.mark.parametrize(("moment", "_aware", "_naive"), TABLE)
def test_round_trips(moment: datetime, _aware: datetime, _naive: datetime) -> None:
    assert utc.aware(utc.naive(moment)) == utc.aware(moment)
    assert utc.naive(utc.aware(moment)) == utc.naive(moment)


def test_naive_input_of_naive_is_returned_as_is() -> None:
    assert utc.naive(NAIVE) is NAIVE


@time_machine.travel(datetime(2024, 7, 1, 9, 30, tzinfo=JST), tick=False)
def test_now_is_aware_utc() -> None:
    moment = utc.now()
    assert moment == NAIVE.replace(tzinfo=UTC)
    assert moment.tzinfo is UTC
