import random
from itertools import pairwise

import pytest

from tests.versioning.test_versions import SAME_VERSION, VERSIONS
from versioning import sort_key

# In sorting order: invalid strings first, by their text, then valid versions by meaning.
ORDERED = ["", "1..2", "latest", "x1.2", *VERSIONS]


@pytest.mark.parametrize(("smaller", "larger"), list(pairwise(ORDERED)))
def test_sort_key_orders(smaller: str, larger: str) -> None:
    assert sort_key(smaller) < sort_key(larger)


@pytest.mark.parametrize("seed", range(5))
def test_sorted_matches_table(seed: int) -> None:
    shuffled = list(ORDERED)
    random.Random(seed).shuffle(shuffled)
    assert sorted(shuffled, key=sort_key) == ORDERED


@pytest.mark.parametrize(("left", "right"), SAME_VERSION)
def test_equal_versions_get_equal_keys(left: str, right: str) -> None:
    assert sort_key(left) == sort_key(right)


@pytest.mark.parametrize(
    ("invalid", "valid"),
    [("latest", "0.0.1"), ("zzz", "0"), ("9999.0.0.x", "0.0.0-alpha"), ("", "1.0.0")],
)
def test_invalid_sorts_before_every_valid(invalid: str, valid: str) -> None:
    assert sort_key(invalid) < sort_key(valid)


def test_different_texts_of_one_version_keep_their_order_in_a_stable_sort() -> None:
    assert sorted(["3.12.0", "3.12", "v3.12"], key=sort_key) == ["3.12.0", "3.12", "v3.12"]
