"""The score table: every impact × scope, and the scope boundaries."""

from __future__ import annotations

import pytest

from incidents.scoring import (
    IMPACTS,
    InvalidScoreInput,
    ScopeThresholds,
    scope_for,
    score,
)

ACTIVE = 1000
# (affected stores of 1,000 active, scope)
SCOPES = [
    (1, 1),
    (5, 1),
    (99, 1),  # "a few": fewer than 100
    (100, 2),
    (101, 2),
    (499, 2),
    (500, 2),  # exactly half is still "up to half"
    (501, 3),  # more than half
    (999, 3),
    (1000, 3),
    (1200, 3),  # more affected than counted as active
]


@pytest.mark.parametrize(
    ("impact", "affected", "expected"),
    [(impact, affected, impact * scope) for impact in IMPACTS for affected, scope in SCOPES],
)
def test_every_impact_times_every_scope(impact: int, affected: int, expected: int) -> None:
    result = score(impact, affected, ACTIVE)
    assert result.value == expected
    assert result.value == result.impact * result.scope


@pytest.mark.parametrize(("affected", "scope"), SCOPES)
def test_scope_bands(affected: int, scope: int) -> None:
    assert scope_for(affected, ACTIVE) == scope


@pytest.mark.parametrize(
    ("affected", "active", "scope"),
    [
        (99, 200, 1),
        (100, 200, 2),  # exactly half of 200, and 100 stores
        (101, 200, 3),
        (2, 3, 3),  # a small fleet: most of its stores is the widest scope
        (1, 2, 1),  # exactly half of two stores is not "more than half"
        (150, 301, 2),
        (151, 301, 3),
    ],
)
def test_boundaries_on_other_fleets(affected: int, active: int, scope: int) -> None:
    assert scope_for(affected, active) == scope


def test_the_issue_example_minor_problem_at_most_stores_scores_3() -> None:
    result = score(1, 600, 1000)
    assert (result.impact, result.scope, result.value) == (1, 3, 3)
    assert result.derivation == (
        "impact 1 (store work inconvenienced (minor usability problem)) × scope 3 "
        "(600 stores: more than half of 1,000 active stores) = 3"
    )


def test_derivation_names_the_band() -> None:
    assert "fewer than 100 stores" in score(5, 1, 1000).derivation
    assert "1 store:" in score(5, 1, 1000).derivation
    assert "at least 100 stores and at most half of 1,000" in score(3, 100, 1000).derivation


def test_thresholds_are_configurable() -> None:
    narrow = ScopeThresholds(few_below=10, most_share=0.25)
    assert scope_for(9, 1000, narrow) == 1
    assert scope_for(10, 1000, narrow) == 2
    assert scope_for(250, 1000, narrow) == 2
    assert scope_for(251, 1000, narrow) == 3
    assert "more than 25% of" in score(1, 251, 1000, narrow).derivation


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: score(2, 1, 10), "impact"),
        (lambda: score(0, 1, 10), "impact"),
        (lambda: score(1, 0, 10), "stores"),
        (lambda: score(1, 1, 0), "active"),
        (lambda: ScopeThresholds(few_below=0), "few_below"),
        (lambda: ScopeThresholds(most_share=1.0), "most_share"),
    ],
)
def test_invalid_input_names_the_field(call, field: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidScoreInput) as caught:
        call()
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("text", "csv_file", "ids"),
    [
        ("S0001\nS0002", False, ["S0001", "S0002"]),
        ("S0001, S0002;S0003 S0001", False, ["S0001", "S0002", "S0003"]),
        ('store_id,name\nS0004,Four, Ltd\n"S0005",Five\n', True, ["S0004", "S0005"]),
        ("", False, []),
    ],
)
def test_parse_store_ids(text: str, csv_file: bool, ids: list[str]) -> None:
    from service.incidents.services import parse_store_ids

    assert parse_store_ids(text, csv_file=csv_file) == ids
