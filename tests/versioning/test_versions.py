import pytest

from versioning import MAX_NUMBER, InvalidVersion, parse_version

# must be in sorting order
VERSIONS = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.0+1",
    "1.0.0+2",
    "1.0.0+10",
    "1.0.1",
    "1.2",
    "1.10.0",
    "3.9.0",
    "3.12.0-beta.2",
    "3.12.0",
    "3.12.0+456",
    "3.12.1",
    "2024.07.1",
    "2024.07.2",
    "2024.10.1",
]

# two spellings of one version each: their keys (sort key, storage key) must be equal
SAME_VERSION = [
    ("3.12", "3.12.0"),
    ("v3.12.0", "3.12.0"),
    ("2024.07.1", "2024.7.1"),
    (" 1.2.3 ", "1.2.3"),
]


@pytest.mark.parametrize("index", range(len(VERSIONS) - 1))
def test_versions_sort_in_order(index: int) -> None:
    smaller, larger = parse_version(VERSIONS[index]), parse_version(VERSIONS[index + 1])
    assert smaller < larger
    assert larger > smaller
    assert smaller != larger


def test_sorted_list_matches_table() -> None:
    shuffled = list(reversed(VERSIONS))
    assert [str(v) for v in sorted(parse_version(s) for s in shuffled)] == VERSIONS


@pytest.mark.parametrize(
    ("left", "right"),
    [("3.12", "3.12.0"), ("v3.12.0", "3.12.0"), ("2024.07.1", "2024.7.1"), (" 1.2.3 ", "1.2.3")],
)
def test_equal_versions(left: str, right: str) -> None:
    assert parse_version(left) == parse_version(right)
    assert hash(parse_version(left)) == hash(parse_version(right))


def test_string_order_would_be_wrong() -> None:
    assert "3.10.0" < "3.9.0"
    assert parse_version("3.10.0") > parse_version("3.9.0")


@pytest.mark.parametrize(
    ("text", "release", "pre", "build_number"),
    [
        ("3.12.0", (3, 12, 0), False, None),
        ("3.12.0-beta.2", (3, 12, 0), True, None),
        ("3.12.0+456", (3, 12, 0), False, 456),
        ("2024.07.1", (2024, 7, 1), False, None),
        ("v1.2.3-rc.1+build.7", (1, 2, 3), True, None),
    ],
)
def test_parts(text: str, release: tuple[int, ...], pre: bool, build_number: int | None) -> None:
    version = parse_version(text)
    assert version.release == release
    assert version.is_prerelease is pre
    assert version.build_number == build_number
    assert str(version) == text


@pytest.mark.parametrize(
    "text",
    ["", "latest", "1..2", "1.2.", ".1.2", "1.2.3-", "1.2.3+", "1.2.3-beta..1", "1,2,3", "x1.2"],
)
def test_invalid_versions(text: str) -> None:
    with pytest.raises(InvalidVersion):
        parse_version(text)


def test_invalid_version_is_a_value_error_with_a_message() -> None:
    with pytest.raises(ValueError, match="not a version"):
        parse_version("latest")


@pytest.mark.parametrize(
    "text",
    [
        "99999999999999999999.0.0",
        "1.99999999999999999999",
        "9223372036854775808.0",
        "1.0.0-rc.99999999999999999999",
        "1.0.0+99999999999999999999",
    ],
)
def test_a_number_beyond_64_bits_is_refused_naming_it(text: str) -> None:
    number = next(p for p in text.replace("-", ".").replace("+", ".").split(".") if len(p) > 18)
    with pytest.raises(InvalidVersion, match=f"its number {number} is too large"):
        parse_version(text)


@pytest.mark.parametrize(
    "text", [f"{MAX_NUMBER}.0.0", f"1.{MAX_NUMBER}", "3.12.0+20240701123456", "2024.07.1-rc.12"]
)
def test_every_number_up_to_64_bits_is_a_version(text: str) -> None:
    assert parse_version(text).original == text
