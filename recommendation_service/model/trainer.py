"""Training implicit-feedback ALS on a window snapshot."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from ..errors import ConfigError, ModelFitError
from .window import WindowSnapshot

logger = logging.getLogger(__name__)


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
    num_threads
        Threads implicit may use; 0 means all cores.
    random_state
        Seed for reproducible factors.
    """

    factors: int = 64
    regularization: float = 0.05
    alpha: float = 3.0
    iterations: int = 15
    num_threads: int = 0
    random_state: int | None = 42

    def __post_init__(self) -> None:
        _require(1 <= self.factors <= 1024, "factors must be between 1 and 1024")
        _require(self.regularization >= 0, "regularization must be >= 0")
        _require(self.alpha > 0, "alpha must be > 0")
        _require(1 <= self.iterations <= 1000, "iterations must be between 1 and 1000")
        _require(self.num_threads >= 0, "num_threads must be >= 0 (0 = all cores)")


@dataclass(frozen=True)
class TrainedModel:
    """Factors learned from one snapshot, with everything needed to publish and serve them."""

    user_factors: np.ndarray  # (n_users, factors) float32
    item_factors: np.ndarray  # (n_items, factors) float32
    snapshot: WindowSnapshot
    params: ALSParams
    training_seconds: float
    trainer: str = "implicit"  # which library fitted it (recorded in the manifest)


def popularity(snapshot: WindowSnapshot) -> tuple[np.ndarray, np.ndarray]:
    """Items of the window ranked by how many distinct users touched them.

    Ties are broken by summed weight, then by column, so the ranking is deterministic.

    Returns
    -------
    (order, counts)
        Column indices best first, and the distinct-user count of each, in that order.
    """
    matrix = snapshot.matrix
    users = np.asarray(matrix.getnnz(axis=0), dtype=np.int64)
    weights = np.asarray(matrix.sum(axis=0)).ravel()
    order = np.lexsort((np.arange(len(users)), -weights, -users))
    return order.astype(np.int64), users[order].astype(np.float32)


class ALSTrainer:
    """Fits :class:`implicit.cpu.als.AlternatingLeastSquares` on window snapshots.

    Parameters
    ----------
    params
        Hyper-parameters used for every fit.
    """

    def __init__(self, params: ALSParams) -> None:
        self.params = params

    def fit(self, snapshot: WindowSnapshot, params: ALSParams | None = None) -> TrainedModel:
        """Train on ``snapshot`` (with ``params`` instead of the trainer's, when given).

        Raises
        ------
        ModelFitError
            If the snapshot is empty or the factors come out non-finite.
        """
        # Imported here so processes that only serve never load implicit.
        from implicit.cpu.als import AlternatingLeastSquares

        if snapshot.matrix.nnz == 0:
            raise ModelFitError("cannot train on an empty window")
        p = params or self.params
        start = time.perf_counter()
        # implicit parallelises with its own threads; BLAS threads on top oversubscribe (and
        # implicit warns about it when the model is constructed, so construct it in here too).
        with threadpool_limits(1, "blas"):
            try:
                model = AlternatingLeastSquares(
                    factors=p.factors,
                    regularization=p.regularization,
                    alpha=p.alpha,
                    iterations=p.iterations,
                    num_threads=p.num_threads,
                    random_state=p.random_state,
                )
                model.fit(snapshot.matrix, show_progress=False)
            except Exception as exc:  # implicit raises plain errors; give callers one type
                raise ModelFitError(f"ALS fit failed: {exc}") from exc
        seconds = time.perf_counter() - start
        user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        if not (np.isfinite(user_factors).all() and np.isfinite(item_factors).all()):
            raise ModelFitError(
                "ALS produced non-finite factors; lower alpha or raise regularization"
            )
        logger.info(
            "trained ALS on %d events (%d users x %d items, %d nonzeros) in %.2f s",
            snapshot.n_events,
            snapshot.n_users,
            snapshot.n_items,
            snapshot.matrix.nnz,
            seconds,
        )
        return TrainedModel(user_factors, item_factors, snapshot, p, seconds)
