"""NotesConfig from TOML: valid files and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from release_notes.config import ConfigError, NotesConfig, config_from_dict, load_config
from release_notes.errors import NotesError


def test_load_full_config(tmp_path: Path) -> None:
    path = tmp_path / "notes.toml"
    path.write_text(
        """
[release_notes]
pr_url = "https://github.com/acme/pos/pull/{number}"
tag_prefix = "pos/"
bot_policy = "filter"
bots = ["ci-robot*"]
template = "custom.md.j2"

[release_notes.areas]
order = "Ordering"
KDS = "Kitchen display"
"""
    )
    config = load_config(path)
    assert config.area_for("order") == "Ordering"
    assert config.area_for("Kds") == "Kitchen display"
    assert config.area_for("order,menu") == "Ordering"
    assert config.area_for("menu") == "menu"
    assert config.area_for(None) == "General"
    assert config.template == tmp_path / "custom.md.j2"
    assert config.is_bot("ci-robot", "x@y") and not config.is_bot("dependabot[bot]", "d@x")
    assert config.tag_prefix == "pos/" and config.bot_policy == "filter"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"bot_policy": "drop"}, "release_notes.bot_policy"),
        ({"pr_url": "https://x/pull"}, "release_notes.pr_url"),
        ({"pr_url": 5}, "release_notes.pr_url"),
        ({"areas": {"order": 3}}, "release_notes.areas.order"),
        ({"areas": "order"}, "release_notes.areas"),
        ({"bots": "dependabot"}, "release_notes.bots"),
        ({"colour": "red"}, "release_notes.colour"),
        ({"commit_url": "https://x/{number}"}, "release_notes.commit_url"),
    ],
)
def test_invalid_config_names_the_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        config_from_dict({"release_notes": data})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[release_notes\n", "not valid TOML"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_unreadable_config(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(NotesError, match=message):
        load_config(path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.toml")


def test_bot_patterns_treat_brackets_literally() -> None:
    config = NotesConfig()
    assert config.is_bot("dependabot[bot]", "1+dependabot[bot]@users.noreply.github.com")
    assert config.is_bot("renovate[bot]", "bot@renovateapp.com")
    assert config.is_bot(
        "github-actions[bot]", "41898282+github-actions[bot]@users.noreply.github.com"
    )
    assert not config.is_bot("Robot Tobor", "tobor@example.com")
