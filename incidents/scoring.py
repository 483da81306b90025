"""Incident score: impact on store work × scope (how many stores). Pure: no database.

The impact levels and the scope bands come from the release talk: impact 1 = store work
inconvenienced, 3 = hampered (a workaround exists), 5 = impossible; scope 1 = one to a few
stores (fewer than ``few_below``, 100 by default), 2 = from ``few_below`` up to half of the
active stores, 3 = more than half. "More than half" is checked first, so on a small fleet a
problem at most stores is still the widest scope. Exactly half is scope 2.
"""

from __future__ import annotations

from dataclasses import dataclass

IMPACTS: dict[int, str] = {
    1: "store work inconvenienced (minor usability problem)",
    3: "store work hampered (a workaround exists)",
    5: "store work impossible (no workaround)",
}
SCOPES: dict[int, str] = {
    1: "one to a few stores",
    2: "many stores, up to half",
    3: "more than half of the stores",
}
DEFAULT_FEW_BELOW = 100
DEFAULT_MOST_SHARE = 0.5


class InvalidScoreInput(ValueError):
    """An impact or store count that cannot be scored; ``field`` names the input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ScopeThresholds:
    """Fewer than ``few_below`` stores is scope 1; more than ``most_share`` of the active
    stores is scope 3; anything between is scope 2."""

    few_below: int = DEFAULT_FEW_BELOW
    most_share: float = DEFAULT_MOST_SHARE

    def __post_init__(self) -> None:
        if self.few_below < 1:
            raise InvalidScoreInput("few_below", "the 'few stores' threshold must be at least 1")
        if not 0 < self.most_share < 1:
            raise InvalidScoreInput("most_share", "the 'most stores' share must be between 0 and 1")


@dataclass(frozen=True)
class Score:
    impact: int
    scope: int
    affected: int
    active: int
    thresholds: ScopeThresholds

    @property
    def value(self) -> int:
        return self.impact * self.scope

    @property
    def scope_reason(self) -> str:
        half = _share_text(self.thresholds.most_share)
        if self.scope == 3:
            return f"more than {half} of {self.active:,} active stores"
        if self.scope == 2:
            return (
                f"at least {self.thresholds.few_below:,} stores and at most {half} "
                f"of {self.active:,} active stores"
            )
        return f"fewer than {self.thresholds.few_below:,} stores"

    @property
    def derivation(self) -> str:
        """How the score was derived, in words, e.g. ``impact 1 (…) × scope 3 (…) = 3``."""
        stores = f"{self.affected:,} store{'' if self.affected == 1 else 's'}"
        return (
            f"impact {self.impact} ({IMPACTS[self.impact]}) × scope {self.scope} "
            f"({stores}: {self.scope_reason}) = {self.value}"
        )


def _share_text(share: float) -> str:
    return "half" if share == 0.5 else f"{share:.0%}"


def scope_for(affected: int, active: int, thresholds: ScopeThresholds = ScopeThresholds()) -> int:
    """The scope band (1, 2 or 3) for ``affected`` stores out of ``active``."""
    if affected < 1:
        raise InvalidScoreInput("stores", "an incident affects at least one store")
    if active < 1:
        raise InvalidScoreInput("active", "there must be at least one active store")
    if affected > active * thresholds.most_share:
        return 3
    if affected >= thresholds.few_below:
        return 2
    return 1


def score(
    impact: int, affected: int, active: int, thresholds: ScopeThresholds = ScopeThresholds()
) -> Score:
    """Score an incident: ``impact`` (1, 3 or 5) × the scope of ``affected`` stores."""
    if impact not in IMPACTS:
        raise InvalidScoreInput("impact", "impact must be 1, 3 or 5")
    scope = scope_for(affected, active, thresholds)
    return Score(
        impact=impact, scope=scope, affected=affected, active=active, thresholds=thresholds
    )
