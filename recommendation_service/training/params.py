"""The hyper-parameters of ALS, shared by both trainers, the fold-in and the tuning search."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class ALSParams:
    """Hyper-parameters of implicit's alternating least squares.

    Parameters
    ----------
    factors
        Latent dimensions.
    regularization
        L2 penalty on the factors.
    alpha
        Confidence scale applied to the interaction weights.
    iterations
        ALS sweeps per refit.
    warm_iterations
        Sweeps of a refit that starts from the previous version's factors (users and items
        still in the window keep theirs, new ones start at random): the window moves by a
        fraction between refits, so fewer sweeps reach the same fit (never more than
        ``iterations``). 0 starts every refit from random factors with ``iterations``
        sweeps. Tuning's candidate fits always start cold.
    num_threads
        Threads implicit may use; 0 means all cores.
    random_state
        Seed for reproducible factors.
    """

    factors: int = 64
    regularization: float = 0.05
    alpha: float = 3.0
    iterations: int = 15
    warm_iterations: int = 5
    num_threads: int = 0
    random_state: int | None = 42

    def __post_init__(self) -> None:
        _require(1 <= self.factors <= 1024, "factors must be between 1 and 1024")
        _require(self.regularization >= 0, "regularization must be >= 0")
        _require(self.alpha > 0, "alpha must be > 0")
        _require(1 <= self.iterations <= 1000, "iterations must be between 1 and 1000")
        _require(self.warm_iterations >= 0, "warm-iterations must be >= 0 (0 = always cold)")
        _require(self.num_threads >= 0, "num_threads must be >= 0 (0 = all cores)")
