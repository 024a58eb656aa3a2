"""What a recommendation request asks beyond user and n: filters, named rules, diversity,
promotion, and the experiment variant's settings -- from query parameters (GET) or JSON
fields (POST), with a JSON 400 saying what a bad one should be.

A variant's settings apply under the request's: its ``rule`` is added to the request's
filters, and its ``promote``, ``diversify`` and ``explore_share`` apply when the request does
not set its own.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from flask import abort, current_app

from ..config.server import ServerConfig
from ..experiments.variants import MAX_SEQUENCE_DEPTH, Variant, parse_promote
from ..ranking.version_stage import RANKER_CHOICES
from ..recommend.request import NO_SHAPE, ExploreParams, ListShape
from ..rules.expressions import RuleError
from ..rules.item_rules import ItemRules
from ..vectors.sequences import SequenceWeights

_ATTRIBUTE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Plan:
    """Everything besides user and n that decides a recommendation list."""

    rules: ItemRules
    shape: ListShape = NO_SHAPE
    explore: ExploreParams | None = None
    variant: Variant | None = None
    #: The sequence term's weight and depth the request (or its variant) asks for; None: the
    #: served version's.
    sequence_weight: float | None = None
    sequence_depth: int | None = None
    #: The ranker the request (or its variant) asks for; None: the served version's choice.
    ranker: str | None = None

    def sequence(self, served: SequenceWeights) -> SequenceWeights | None:
        """The sequence term's settings for this request, on top of the served version's."""
        if self.sequence_weight is None and self.sequence_depth is None:
            return None
        return replace(
            served,
            weight=served.weight if self.sequence_weight is None else self.sequence_weight,
            depth=served.depth if self.sequence_depth is None else self.sequence_depth,
        )


def _config() -> ServerConfig:
    return current_app.config["RECSVC"]


def _bad(what: str) -> None:
    abort(400, description=what)


def named_rules(names: list[str], values: dict, where: str) -> tuple:
    """``(rule, params)`` pairs of the named rules, with the request's parameter values."""
    rules = _config().rules
    out = []
    for name in names:
        rule = rules.get(name)
        if rule is None:
            known = ", ".join(sorted(rules)) or "none: start the server with --rules-file"
            _bad(f"{where}: no rule named {name!r} (rules: {known})")
        missing = sorted(rule.params - set(values))
        if missing:
            _bad(f"rule {name!r} needs " + ", ".join(f"'{m}'" for m in missing) + f" ({where})")
        out.append((rule, tuple(sorted((k, _hashable(values[k])) for k in rule.params))))
    return tuple(out)


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def promote_spec(text: str, values: dict, where: str) -> tuple[tuple, int]:
    """``<rule>:<slots>`` -> ((rule, params), slots)."""
    try:
        name, slots = parse_promote(text, dict(_config().rules), where)
    except RuleError as exc:
        _bad(str(exc))
    return named_rules([name], values, where)[0], slots


def shape_of(diversify: str | None, max_per: object, promote) -> ListShape:
    if diversify is not None and not _ATTRIBUTE.fullmatch(diversify):
        _bad("'diversify' must be 'category' or a catalog attribute name")
    if max_per is not None:
        if diversify is None:
            _bad("'max_per' needs 'diversify'")
        ok = isinstance(max_per, int) or (isinstance(max_per, str) and max_per.isdigit())
        if isinstance(max_per, bool) or not ok or not 1 <= int(max_per) <= _config().max_n:
            _bad("'max_per' must be a positive integer")
    return ListShape(
        diversify=diversify,
        max_per=int(max_per) if max_per is not None else 2,
        promote=promote[0] if promote else None,
        promote_slots=promote[1] if promote else 0,
    )


def with_variant(plan: Plan, user: str) -> Plan:
    """``plan`` under the experiment's variant of ``user`` (unchanged without an experiment)."""
    experiment = _config().experiment
    if experiment is None:
        return plan
    variant = experiment.assign(user)
    rules, shape, explore = plan.rules, plan.shape, plan.explore
    if variant.rule is not None:
        rules = replace(rules, named=(*rules.named, (_config().rules[variant.rule], ())))
    if variant.promote is not None and shape.promote is None:
        rule = _config().rules[variant.promote]
        shape = replace(shape, promote=(rule, ()), promote_slots=variant.promote_slots)
    if variant.diversify is not None and shape.diversify is None:
        shape = replace(shape, diversify=variant.diversify, max_per=variant.max_per)
    if variant.explore_share is not None:
        explore = replace(explore or _config().explore, share=variant.explore_share)
    weight = plan.sequence_weight if plan.sequence_weight is not None else variant.sequence_weight
    depth = plan.sequence_depth if plan.sequence_depth is not None else variant.sequence_depth
    ranker = plan.ranker if plan.ranker is not None else variant.ranker
    return Plan(rules, shape, explore, variant, weight, depth, ranker)


def ranker_of(value: object, where: str) -> str | None:
    """The ranker a request asks for (None: not asked)."""
    if value is None:
        return None
    if value not in RANKER_CHOICES:
        _bad(f"{where} 'ranker' must be one of {', '.join(RANKER_CHOICES)}")
    return str(value)


def sequence_of(weight: object, depth: object, where: str) -> tuple[float | None, int | None]:
    """The sequence term's weight and depth a request asks for (None: not asked)."""
    if weight is not None:
        weight = finite_number(weight, f"{where} 'sequence_weight'")
        if not 0 <= weight <= 1000:
            _bad(f"{where} 'sequence_weight' must be a number from 0 to 1000")
    if depth is not None:
        ok = isinstance(depth, int) or (isinstance(depth, str) and depth.isdigit())
        if isinstance(depth, bool) or not ok or not 1 <= int(depth) <= MAX_SEQUENCE_DEPTH:
            _bad(f"{where} 'sequence_depth' must be an integer from 1 to {MAX_SEQUENCE_DEPTH}")
        depth = int(depth)
    return weight, depth


def finite_number(value: object, where: str) -> float | None:
    """A finite number from JSON or a query string, or a JSON 400."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _bad(f"{where} must be a finite number")
    return float(value)
