"""What a recommendation request answers, and the list operations every stage shares."""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Recommendation:
    """A list of items, best first, with their scores and why each is there.

    Parameters
    ----------
    items, scores
        The list, best first.
    source
        ``model`` (a known user) or ``popular`` (the unknown-user fallback).
    as_of
        Time of the user's newest event reflected, when fresh vectors did.
    reasons
        Per item: ``model`` (the ALS term dominates its score), ``similar_to_recent`` (the
        similarity to the user's recent items does), ``new_item`` (folded in since the refit,
        or explored), ``promoted`` (a promoted slot), ``popular`` (the unknown-user fallback).
    """

    items: list[str]
    scores: list[float]
    source: str
    as_of: float | None = None
    reasons: list[str] = field(default_factory=list)

    def take(self, keep: list[int]) -> Recommendation:
        """The items at positions ``keep``, in that order."""
        return replace(
            self,
            items=[self.items[k] for k in keep],
            scores=[self.scores[k] for k in keep],
            reasons=[self.reasons[k] for k in keep] if self.reasons else [],
        )

    def without(self, drop: set[str]) -> Recommendation:
        """The list less the items in ``drop``."""
        if not drop:
            return self
        return self.take([k for k, item in enumerate(self.items) if item not in drop])

    def extended(self, more: Recommendation) -> Recommendation:
        """The list with ``more`` after it."""
        return replace(
            self,
            items=self.items + more.items,
            scores=self.scores + more.scores,
            reasons=self.reasons + more.reasons,
        )

    def with_picks(self, picks: list[tuple[float, str, str]]) -> Recommendation:
        """The same answer with ``(score, item, reason)`` picks as its list."""
        return replace(
            self,
            items=[i for _, i, _ in picks],
            scores=[s for s, _, _ in picks],
            reasons=[r for _, _, r in picks],
        )
