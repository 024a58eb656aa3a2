"""A small expression language over catalog items, for named rules and promotions.

Grammar (keywords are lower case)::

    expr       := term ("or" term)*
    term       := factor ("and" factor)*
    factor     := "not" factor | "(" expr ")" | comparison | field
    comparison := field op value | field ["not"] "in" value | value ["not"] "in" "tags"
    op         := "==" | "!=" | "<" | "<=" | ">" | ">="
    value      := $param | number | 'text' | "text" | true | false | "[" value, ... "]"

Fields: ``id``, ``category``, ``price``, ``available``, ``created_at`` (epoch seconds),
``age_days`` (days since ``created_at``, at request time), ``tags`` (only with ``in``), and the
catalog's scalar attributes, by bare name or as ``attributes.<name>``. A bare ``field`` is true
where it is ``true`` (``available``, a boolean attribute).

Rules:

* An item without a value for a field matches no comparison on it (``!=`` included); ``not``
  inverts the result, so ``not category == 'toys'`` keeps uncategorized items.
* ``$name`` is a request parameter: a number where compared with ``<``..``>=`` or a numeric
  field, a list after ``in`` (a comma-separated string is split), text otherwise.
* Items the catalog does not list match no rule.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

import numpy as np

from ..data.catalog import CatalogSnapshot

_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)|(?P<str>'[^']*'|\"[^\"]*\")"
    r"|(?P<param>\$[A-Za-z_][A-Za-z0-9_]*)|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)"
    r"|(?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,))"
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false"}
NUMERIC_FIELDS = ("price", "created_at", "age_days")
BUILTIN_FIELDS = ("id", "category", "available", "tags", *NUMERIC_FIELDS)


class RuleError(ValueError):
    """A rule that does not parse, or a request parameter it cannot use."""


@dataclass(frozen=True)
class Rule:
    """A compiled rule: its source, syntax tree and the ``$params`` it needs."""

    name: str
    source: str
    tree: tuple
    params: frozenset[str]
    reads_clock: bool = False  # uses age_days: its result changes with time

    def rows(self, catalog: CatalogSnapshot, params: dict, now: float | None = None):
        """Per catalog row, whether the item passes (``params``: the request's values)."""
        missing = self.params - set(params)
        if missing:
            raise RuleError(f"rule {self.name!r} needs " + ", ".join(sorted(missing)))
        env = _Env(catalog, params, time.time() if now is None else now, self.name)
        return env.eval(self.tree)


def compile_rule(name: str, source: str) -> Rule:
    """Parse ``source``.

    Raises
    ------
    RuleError
        Saying where and what was expected.
    """
    tokens, pos = [], 0
    source = source.strip()
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None or m.end() == pos:
            raise RuleError(f"rule {name!r}: unexpected {source[pos : pos + 10]!r} at {pos}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    parser = _Parser(name, tokens)
    tree = parser.expr()
    if parser.k != len(tokens):
        raise RuleError(f"rule {name!r}: unexpected {tokens[parser.k][1]!r}")
    return Rule(name, source, tree, frozenset(parser.params), "age_days" in repr(tree))


class _Parser:
    def __init__(self, name: str, tokens: list) -> None:
        self.name, self.tokens, self.k, self.params = name, tokens, 0, set()

    def peek(self) -> str | None:
        return self.tokens[self.k][1] if self.k < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple:
        if self.k >= len(self.tokens):
            raise RuleError(f"rule {self.name!r}: ends early, expected {expected or 'more'!r}")
        token = self.tokens[self.k]
        if expected is not None and token[1] != expected:
            raise RuleError(f"rule {self.name!r}: expected {expected!r}, got {token[1]!r}")
        self.k += 1
        return token

    def expr(self) -> tuple:
        node = self.term()
        while self.peek() == "or":
            self.take()
            node = ("or", node, self.term())
        return node

    def term(self) -> tuple:
        node = self.factor()
        while self.peek() == "and":
            self.take()
            node = ("and", node, self.factor())
        return node

    def factor(self) -> tuple:
        if self.peek() == "not":
            self.take()
            return ("not", self.factor())
        if self.peek() == "(":
            self.take()
            node = self.expr()
            self.take(")")
            return node
        left = self.value_or_field()
        op = self.peek()
        if op == "not":
            self.take()
            self.take("in")
            return ("not", self.membership(left))
        if op == "in":
            self.take()
            return self.membership(left)
        if op in ("==", "!=", "<", "<=", ">", ">="):
            if left[0] != "field":
                raise RuleError(f"rule {self.name!r}: a comparison starts with a field")
            self.take()
            return ("cmp", op, left[1], self.value())
        if left[0] != "field":
            raise RuleError(f"rule {self.name!r}: expected a comparison after {left[1]!r}")
        return ("cmp", "==", left[1], ("lit", True))

    def membership(self, left: tuple) -> tuple:
        if self.peek() == "tags":
            self.take()
            if left[0] == "field":
                raise RuleError(f"rule {self.name!r}: write 'text' in tags")
            return ("tag", left)
        if left[0] != "field":
            raise RuleError(f"rule {self.name!r}: 'in' needs a field or 'tags'")
        return ("in", left[1], self.value())

    def value_or_field(self) -> tuple:
        kind, text = self.tokens[self.k] if self.k < len(self.tokens) else (None, None)
        if kind == "name" and text not in _KEYWORDS:
            self.take()
            field = text.removeprefix("attributes.") if text.startswith("attributes.") else text
            if text.startswith("attributes."):
                return ("field", "attr:" + field)
            if field == "tags":
                raise RuleError(f"rule {self.name!r}: tags is only used as 'text' in tags")
            return ("field", field if field in BUILTIN_FIELDS else "attr:" + field)
        return self.value()

    def value(self) -> tuple:
        if self.k >= len(self.tokens):
            raise RuleError(f"rule {self.name!r}: ends early, expected a value")
        kind, text = self.take()
        if text == "[":
            items = []
            while self.peek() != "]":
                items.append(self.value())
                if self.peek() == ",":
                    self.take()
            self.take("]")
            if any(i[0] != "lit" for i in items):
                raise RuleError(f"rule {self.name!r}: a list holds literals only")
            return ("lit", tuple(i[1] for i in items))
        if kind == "num":
            return ("lit", float(text))
        if kind == "str":
            return ("lit", text[1:-1])
        if kind == "param":
            self.params.add(text[1:])
            return ("param", text[1:])
        if text in ("true", "false"):
            return ("lit", text == "true")
        raise RuleError(f"rule {self.name!r}: expected a value, got {text!r}")


class _Env:
    """Evaluates a tree over every catalog row at once."""

    def __init__(self, catalog: CatalogSnapshot, params: dict, now: float, name: str) -> None:
        self.c, self.params, self.now, self.name = catalog, params, now, name
        self.n = len(catalog.available)

    def eval(self, node: tuple) -> np.ndarray:
        kind = node[0]
        if kind == "and":
            return self.eval(node[1]) & self.eval(node[2])
        if kind == "or":
            return self.eval(node[1]) | self.eval(node[2])
        if kind == "not":
            return ~self.eval(node[1])
        if kind == "tag":
            value = self.resolve(node[1], "list")
            wanted = value if isinstance(value, tuple) else (value,)
            return self.c.rows_with_tags([str(v) for v in wanted])
        if kind == "in":
            return self.compare("in", node[1], self.resolve(node[2], "list"))
        field = node[2]
        numeric = field in NUMERIC_FIELDS or node[1] not in ("==", "!=")
        return self.compare(node[1], field, self.resolve(node[3], "number" if numeric else None))

    def resolve(self, node: tuple, want: str | None):
        if node[0] == "lit":
            return node[1]
        raw = self.params[node[1]]
        if want == "list":
            if isinstance(raw, str):
                return tuple(v.strip() for v in raw.split(",") if v.strip())
            return tuple(raw) if isinstance(raw, (list, tuple)) else raw
        if want == "number" and not isinstance(raw, (int, float)):
            try:
                raw = float(raw)
            except (TypeError, ValueError):
                raise RuleError(f"rule {self.name!r}: ${node[1]} must be a number") from None
        return raw

    def compare(self, op: str, field: str, value) -> np.ndarray:
        numbers, texts = self.column(field)
        if op == "in":
            values = value if isinstance(value, tuple) else (value,)
            if texts is None:
                return np.isin(numbers, [_number(v) for v in values])
            codes, table = texts
            wanted = {table[str(v)] for v in values if str(v) in table}
            if len(wanted) > 8:
                lookup = np.zeros(len(table) + 1, dtype=bool)  # last slot: no value (-1)
                lookup[list(wanted)] = True
                return lookup[codes]
            hit = np.zeros(self.n, dtype=bool)
            for code in wanted:
                hit |= codes == code
            return hit
        if isinstance(value, bool) or (texts is not None and isinstance(value, str)):
            if texts is None:
                return np.zeros(self.n, dtype=bool)
            codes, table = texts
            code = table.get(_text(value), -2)
            match = codes == code
            if (
                numbers is not None
                and not isinstance(value, bool)
                and _number(value) == _number(value)
            ):
                match |= numbers == _number(value)  # "5" from a query string, numeric attribute
            has = (codes >= 0) | (~np.isnan(numbers) if numbers is not None else False)
            return match if op == "==" else has & ~match
        if numbers is None:
            raise RuleError(f"rule {self.name!r}: {field} is not a number")
        with np.errstate(invalid="ignore"):
            # NaN (no value) fails every comparison, != included.
            return _OPS[op](numbers, _number(value)) & ~np.isnan(numbers)

    def column(self, field: str):
        """(numbers or None, (codes, value->code) or None) of a field."""
        c = self.c
        if field == "price":
            return c.price, None
        if field == "created_at":
            return c.created_at, None
        if field == "age_days":
            return (self.now - c.created_at) / 86_400.0, None
        if field == "category":
            return None, (c.category, c.category_codes)
        if field == "available":
            return None, (c.available.astype(np.int32), {"false": 0, "true": 1})
        if field == "id":
            return None, (np.arange(self.n), c.row)
        attr = c.attributes.get(field.removeprefix("attr:"))
        if attr is None:
            return np.full(self.n, math.nan), (np.full(self.n, -1), {})
        return attr.numbers, (attr.codes, attr.code)


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


_OPS = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}


#: Request parameters of the API; a rule's ``$param`` may not take one of these names.
RESERVED_PARAMS = frozenset(
    [
        "user",
        "n",
        "exclude",
        "category",
        "tags",
        "exclude_tags",
        "max_price",
        "include_unavailable",
        "diversify",
        "max_per",
        "rule",
        "promote",
        "item",
        "user_id",
        "top_k",
        "candidate_items",
        "exclude_seen",
        "params",
    ]
)


def compile_rules(table: object, where: str) -> dict[str, Rule]:
    """The rules of a ``[rules]`` table (name = "expression").

    Raises
    ------
    RuleError
        If a rule does not parse, or a parameter shadows an API one.
    """
    if not isinstance(table, dict):
        raise RuleError(f'{where}: [rules] must be a table of name = "expression"')
    rules = {}
    for name, source in table.items():
        if not isinstance(source, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise RuleError(f'{where}: {name!r} must be name = "expression"')
        rule = compile_rule(name, source)
        clash = rule.params & RESERVED_PARAMS
        if clash:
            raise RuleError(f"rule {name!r}: ${min(clash)} is an API parameter; rename it")
        rules[name] = rule
    return rules
