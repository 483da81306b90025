"""Per-app release-notes configuration (:class:`NotesConfig`), read from a TOML file.

Pure apart from :func:`load_config`, which reads the file. Every validation error is a
:class:`ConfigError` whose one-line message names the offending key. Example file::

    [release_notes]
    pr_url = "https://github.com/org/pos/pull/{number}"
    commit_url = "https://github.com/org/pos/commit/{sha}"
    tag_prefix = "pos/"             # version tags look like pos/3.12.0
    bot_policy = "dependencies"     # or "filter"
    bots = ["dependabot*", "renovate*", "github-actions*"]
    default_area = "General"
    template = "notes.md.j2"        # relative to this file

    [release_notes.areas]
    order = "Ordering"
    kds = "Kitchen display"
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from release_notes.errors import NotesError

__all__ = ["DEFAULT_BOTS", "ConfigError", "NotesConfig", "config_from_dict", "load_config"]

DEFAULT_BOTS: tuple[str, ...] = (
    "dependabot*",
    "renovate*",
    "github-actions*",
    "*[bot]",
    "*[bot]@users.noreply.github.com",
)
_BOT_POLICIES = ("dependencies", "filter")
_KEYS = frozenset(
    {
        "pr_url",
        "commit_url",
        "tag_prefix",
        "bot_policy",
        "bots",
        "default_area",
        "template",
        "areas",
    }
)


class ConfigError(NotesError, ValueError):
    """An invalid release-notes configuration; the message names the key."""


@dataclass(frozen=True)
class NotesConfig:
    """How notes are grouped, linked and rendered for one app."""

    areas: dict[str, str] = field(default_factory=dict)  # lower-case scope -> area name
    default_area: str = "General"
    bots: tuple[str, ...] = DEFAULT_BOTS
    bot_policy: str = "dependencies"
    pr_url: str | None = None  # e.g. https://github.com/org/repo/pull/{number}
    commit_url: str | None = None  # e.g. https://github.com/org/repo/commit/{sha}
    tag_prefix: str = ""
    template: Path | None = None
    _bot_re: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Only ``*`` is a wildcard: ``[bot]`` in ``dependabot[bot]`` is literal text.
        globs = (re.escape(p.lower()).replace(r"\*", ".*") + r"\Z" for p in self.bots)
        pattern = "|".join(globs) or "(?!)"
        object.__setattr__(self, "_bot_re", re.compile(pattern))

    def area_for(self, scope: str | None) -> str:
        """The product-area name of a scope (``order`` → ``Ordering``)."""
        if not scope:
            return self.default_area
        key = scope.strip().lower()
        area = self.areas.get(key)
        if area is not None:
            return area
        if "," in key:  # ``feat(order,menu)``: the first mapped scope wins
            for part in key.split(","):
                area = self.areas.get(part.strip())
                if area is not None:
                    return area
        return scope.strip()

    def is_bot(self, name: str, email: str) -> bool:
        """True when the author name or email matches one of the ``bots`` patterns."""
        match = self._bot_re.match
        return match(name.lower()) is not None or match(email.lower()) is not None

    def pr_link(self, number: int) -> str | None:
        return self.pr_url.format(number=number) if self.pr_url else None

    def commit_link(self, sha: str) -> str | None:
        return self.commit_url.format(sha=sha) if self.commit_url else None


def _expect_str(data: dict[str, Any], key: str, url_field: str | None = None) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"release_notes.{key} must be a string, not {type(value).__name__}")
    if url_field is not None:
        if "{" + url_field + "}" not in value:
            raise ConfigError(f"release_notes.{key} must contain {{{url_field}}}")
        try:
            value.format(**{url_field: 1})
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"release_notes.{key} is not a valid URL pattern: {exc}") from None
    return value


def config_from_dict(data: dict[str, Any], base_dir: Path | None = None) -> NotesConfig:
    """Validate the ``[release_notes]`` table (or a whole document that holds one)."""
    if "release_notes" in data:
        section = data["release_notes"]
        if not isinstance(section, dict):
            raise ConfigError("release_notes must be a table")
        data = section
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ConfigError(f"unknown key release_notes.{unknown[0]}")

    areas_raw = data.get("areas", {})
    if not isinstance(areas_raw, dict):
        raise ConfigError('release_notes.areas must be a table of scope = "Area name"')
    areas: dict[str, str] = {}
    for scope, name in areas_raw.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"release_notes.areas.{scope} must be a non-empty string")
        areas[str(scope).strip().lower()] = name.strip()

    bots_raw = data.get("bots", list(DEFAULT_BOTS))
    if not isinstance(bots_raw, list) or not all(isinstance(b, str) and b for b in bots_raw):
        raise ConfigError("release_notes.bots must be a list of non-empty name/email patterns")

    policy = data.get("bot_policy", "dependencies")
    if policy not in _BOT_POLICIES:
        raise ConfigError(
            f"release_notes.bot_policy must be one of {', '.join(_BOT_POLICIES)}, not {policy!r}"
        )

    default_area = _expect_str(data, "default_area") or "General"
    tag_prefix = _expect_str(data, "tag_prefix") or ""
    template_raw = _expect_str(data, "template")
    template: Path | None = None
    if template_raw:
        template = Path(template_raw)
        if base_dir is not None and not template.is_absolute():
            template = base_dir / template

    return NotesConfig(
        areas=areas,
        default_area=default_area,
        bots=tuple(bots_raw),
        bot_policy=policy,
        pr_url=_expect_str(data, "pr_url", "number"),
        commit_url=_expect_str(data, "commit_url", "sha"),
        tag_prefix=tag_prefix,
        template=template,
    )


def load_config(path: str | Path) -> NotesConfig:
    """Read and validate a TOML config file. Raises :class:`ConfigError` (one line)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config {path} is not UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path} is not valid TOML: {exc}") from None
    try:
        return config_from_dict(data, base_dir=path.parent)
    except ConfigError as exc:
        raise ConfigError(f"config {path}: {exc}") from None
