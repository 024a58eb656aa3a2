"""Training implicit-feedback ALS on a window snapshot."""

from __future__ import annotations

import logging
import time

import numpy as np
from threadpoolctl import threadpool_limits

from ..data.window import WindowSnapshot
from ..errors import ModelFitError
from .params import ALSParams
from .trained_model import TrainedModel

logger = logging.getLogger(__name__)


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
