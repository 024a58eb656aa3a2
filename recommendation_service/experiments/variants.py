"""A/B experiments: named variants of the request-time settings, and who gets which.

An experiment lives in the server's rules file, beside the rules its variants may use::

    [experiment]
    name = "promo-test"          # counts are kept per experiment name
    salt = "2026-11"             # optional (default: the name); change it to reshuffle users

    [[experiment.variants]]
    name = "control"
    share = 50

    [[experiment.variants]]
    name = "promoted"
    share = 50
    promote = "on_sale:2"        # a named rule and the slots it gets
    diversify = "category"       # optional: an attribute and max_per
    max_per = 2
    rule = "in_stock_cheap"      # optional: a named rule every item must pass
    explore_share = 0.1          # optional: new-item exploration for this variant
    sequence_weight = 4          # optional: the sequence term's weight (and sequence_depth)
    ranker = "sum"               # optional: auto, sum, learned, linear or trees

Assignment: ``sha256(salt + ":" + user)`` read as a number in [0, 1) falls into one variant's
share of the cumulative split, so every process on every host, and every restart, puts a user
in the same variant. Shares are relative weights.

Every recommendation in an experiment carries ``variant`` and a fresh ``recommendation_id``;
servers publish the list as an impression, and events that carry the id attribute clicks and
purchases to the variant and position (builder/observability/attribution_tracker.py).
"""

from __future__ import annotations

import hashlib
import os
import re
from bisect import bisect_right
from dataclasses import dataclass

from ..ranking.version_stage import RANKER_CHOICES
from ..rules.expressions import Rule, RuleError, compile_rules

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: The deepest a request may look into a user's recent items (a version keeps 10 of them).
MAX_SEQUENCE_DEPTH = 10


@dataclass(frozen=True)
class Variant:
    """One arm of an experiment: request-time settings applied to its users' lists."""

    name: str
    share: float
    rule: str | None = None
    promote: str | None = None
    promote_slots: int = 0
    diversify: str | None = None
    max_per: int = 2
    explore_share: float | None = None
    sequence_weight: float | None = None
    sequence_depth: int | None = None
    ranker: str | None = None

    def settings(self) -> dict:
        """What the variant changes, for /experiments."""
        out = {
            "rule": self.rule,
            "promote": f"{self.promote}:{self.promote_slots}" if self.promote else None,
            "diversify": self.diversify,
            "max_per": self.max_per if self.diversify else None,
            "explore_share": self.explore_share,
            "sequence_weight": self.sequence_weight,
            "sequence_depth": self.sequence_depth,
            "ranker": self.ranker,
        }
        return {k: v for k, v in out.items() if v is not None}


@dataclass(frozen=True)
class Experiment:
    """A running experiment: its name, salt and variants."""

    name: str
    salt: str
    variants: tuple[Variant, ...]

    def __post_init__(self) -> None:
        total = sum(v.share for v in self.variants)
        bounds, acc = [], 0.0
        for v in self.variants:
            acc += v.share / total
            bounds.append(acc)
        object.__setattr__(self, "_bounds", tuple(bounds[:-1]))

    def assign(self, user: str) -> Variant:
        """The variant of ``user``: the same in every process, host and restart."""
        digest = hashlib.sha256(f"{self.salt}:{user}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") / 2.0**64
        return self.variants[bisect_right(self._bounds, point)]

    def describe(self) -> dict:
        return {
            "name": self.name,
            "salt": self.salt,
            "variants": [{"name": v.name, "share": v.share, **v.settings()} for v in self.variants],
        }


def new_recommendation_id() -> str:
    """An id for one served list: 16 random bytes, hex (no coordination between hosts)."""
    return os.urandom(16).hex()


def parse_experiment(table: object, rules: dict[str, Rule]) -> Experiment:
    """The ``[experiment]`` table of a rules file.

    Raises
    ------
    RuleError
        Saying which field is wrong and what it should be.
    """
    if not isinstance(table, dict):
        raise RuleError("[experiment] must be a table")
    name = table.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise RuleError("experiment name must be 1-64 letters, digits, '_' or '-'")
    salt = table.get("salt", name)
    if not isinstance(salt, str):
        raise RuleError("experiment salt must be a string")
    raw = table.get("variants")
    if not isinstance(raw, list) or len(raw) < 2:
        raise RuleError("an experiment needs at least two [[experiment.variants]]")
    variants = tuple(_variant(v, rules) for v in raw)
    if len({v.name for v in variants}) != len(variants):
        raise RuleError("experiment variant names must differ")
    return Experiment(name, salt, variants)


def _variant(v: object, rules: dict[str, Rule]) -> Variant:
    if not isinstance(v, dict):
        raise RuleError("each [[experiment.variants]] must be a table")
    unknown = set(v) - {"name", "share", "rule", "promote", "diversify", "max_per",
                        "explore_share", "sequence_weight", "sequence_depth",
                        "ranker"}  # fmt: skip
    if unknown:
        raise RuleError(f"unknown variant field(s): {', '.join(sorted(unknown))}")
    name = v.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise RuleError("variant name must be 1-64 letters, digits, '_' or '-'")
    share = v.get("share")
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not share > 0:
        raise RuleError(f"variant {name!r}: share must be a positive number")
    rule = v.get("rule")
    if rule is not None and rule not in rules:
        raise RuleError(f"variant {name!r}: no rule named {rule!r} in [rules]")
    promote, slots = None, 0
    if "promote" in v:
        promote, slots = parse_promote(str(v["promote"]), rules, f"variant {name!r}")
    diversify = v.get("diversify")
    if diversify is not None and (not isinstance(diversify, str) or not diversify):
        raise RuleError(f"variant {name!r}: diversify must be an attribute name")
    max_per = v.get("max_per", 2)
    if isinstance(max_per, bool) or not isinstance(max_per, int) or max_per < 1:
        raise RuleError(f"variant {name!r}: max_per must be a positive integer")
    explore = v.get("explore_share")
    if explore is not None and (
        isinstance(explore, bool) or not isinstance(explore, (int, float)) or not 0 <= explore <= 1
    ):
        raise RuleError(f"variant {name!r}: explore_share must be in [0, 1]")
    for r in (rule, promote):
        if r is not None and rules[r].params:
            raise RuleError(f"variant {name!r}: rule {r!r} takes $parameters; use one without")
    weight, depth = v.get("sequence_weight"), v.get("sequence_depth")
    if weight is not None and (
        isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1000
    ):
        raise RuleError(f"variant {name!r}: sequence_weight must be a number in [0, 1000]")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int)
                              or not 1 <= depth <= MAX_SEQUENCE_DEPTH):  # fmt: skip
        raise RuleError(f"variant {name!r}: sequence_depth must be 1..{MAX_SEQUENCE_DEPTH}")
    ranker = v.get("ranker")
    if ranker is not None and ranker not in RANKER_CHOICES:
        raise RuleError(f"variant {name!r}: ranker must be one of {', '.join(RANKER_CHOICES)}")
    return Variant(
        name, float(share), rule, promote, slots, diversify, max_per, explore,
        None if weight is None else float(weight), depth, ranker,
    )  # fmt: skip


def parse_promote(text: str, rules: dict[str, Rule], where: str) -> tuple[str, int]:
    """``"<rule>:<slots>"`` -> (rule name, slots)."""
    name, _, slots = text.partition(":")
    if name not in rules:
        raise RuleError(f"{where}: promote needs a rule name from the rules file, got {name!r}")
    if not slots.isdigit() or not 1 <= int(slots) <= 100:
        raise RuleError(f"{where}: promote is '<rule>:<slots>' with 1..100 slots")
    return name, int(slots)


@dataclass(frozen=True)
class RulesFile:
    """What a server's rules file defines: named rules and, optionally, an experiment."""

    path: str
    rules: dict[str, Rule]
    experiment: Experiment | None = None


def load_rules_file(path) -> RulesFile:
    """Read and check a TOML rules file (``[rules]`` and/or ``[experiment]``).

    Raises
    ------
    RuleError
        Saying what is wrong, so the server refuses to start rather than serve half a file.
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RuleError(f"rules file {path}: {exc}") from exc
    unknown = set(data) - {"rules", "experiment"}
    if unknown or not data:
        raise RuleError(f"rules file {path}: expected [rules] and/or [experiment] tables")
    rules = compile_rules(data.get("rules", {}), f"rules file {path}")
    experiment = None
    if "experiment" in data:
        experiment = parse_experiment(data["experiment"], rules)
    return RulesFile(str(path), rules, experiment)
