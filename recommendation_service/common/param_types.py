"""Command-line value types the standard ones leave open: floats that must be finite, and a
field separator typed the way people type one.

Click's ``float`` and ``FloatRange`` accept ``nan`` and ``inf`` (``nan`` passes every range
check, since it compares false), which then fail far from the option that set them.
"""

from __future__ import annotations

import math

import click


class FiniteFloat(click.FloatRange):
    """A float (optionally in a range) that is neither ``nan`` nor infinite."""

    name = "float"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number

    def _describe_range(self) -> str:
        # Unbounded, there is no range to show; click's own text would be "x<=None".
        if self.min is None and self.max is None:
            return ""
        return super()._describe_range()


#: Names and escapes people give for separators that are awkward to type in a shell.
_SEPARATORS = {"\\t": "\t", "tab": "\t", "\\s": " ", "space": " ", "comma": ",",
               "semicolon": ";", "pipe": "|"}  # fmt: skip


class Separator(click.ParamType):
    """One character; ``\\t`` or ``tab`` for a tab (what people type for tab-separated
    files), also ``space``, ``comma``, ``semicolon``, ``pipe``."""

    name = "char"

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        char = _SEPARATORS.get(value.lower(), value)
        if len(char) != 1:
            self.fail(
                f"{value!r} is not one character; give the separator itself, or \\t (tab), "
                "space, comma, semicolon or pipe.",
                param,
                ctx,
            )
        return char
