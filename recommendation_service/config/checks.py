"""The validation helper of every config object, and settings both roles parse alike."""

from __future__ import annotations

from ..data.events import DEFAULT_ACTION_WEIGHTS
from ..errors import ConfigError

#: Environment variable that switches prometheus_client to multi-process mode. ``recsvc serve``
#: sets it before any worker imports prometheus_client (which reads it once, at import).
PROMETHEUS_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def parse_action_weights(pairs: tuple[str, ...] | list[str]) -> dict[str, float]:
    """Parse ``action=weight`` overrides on top of the default table.

    Raises
    ------
    ConfigError
        If an entry is not ``name=number``.
    """
    table = dict(DEFAULT_ACTION_WEIGHTS)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            table[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"action weight {pair!r} must look like name=number") from None
    return table
