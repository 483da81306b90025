import pytest

from tests.versioning.test_versions import SAME_VERSION, VERSIONS
from versioning import MAX_NUMBER, parse_version
from versioning.storage_key import VERSION_KEY_LENGTH, key_of, version_sort_key


@pytest.mark.parametrize("index", range(len(VERSIONS) - 1))
def test_keys_sort_bytewise_in_version_order(index: int) -> None:
    smaller, larger = key_of(VERSIONS[index]), key_of(VERSIONS[index + 1])
    assert smaller.encode() < larger.encode()


@pytest.mark.parametrize(("left", "right"), SAME_VERSION)
def test_equal_versions_get_equal_keys(left: str, right: str) -> None:
    assert key_of(left) == key_of(right)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("3.12.0", "#0013#00212!" + "1" + "0"),
        ("3.12.0-beta.2", "#0013#00212!" + "0#1beta!#00012!" + "0"),
        ("3.12.0+456", "#0013#00212!" + "1" + "1#0003456!"),
    ],
)
def test_encoding(text: str, key: str) -> None:
    assert version_sort_key(parse_version(text)) == key
    assert len(key) <= VERSION_KEY_LENGTH


def test_keys_of_the_largest_numbers_keep_their_order() -> None:
    largest = f"{MAX_NUMBER}.{MAX_NUMBER}.{MAX_NUMBER}-rc.{MAX_NUMBER}+{MAX_NUMBER}"
    ordered = ["9.0.0", f"{MAX_NUMBER - 1}.0.0", f"{MAX_NUMBER}.0.0", largest]
    keys = [key_of(text).encode() for text in ordered]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert all(len(key) <= VERSION_KEY_LENGTH for key in keys)
