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

    def fit(
        self,
        snapshot: WindowSnapshot,
        params: ALSParams | None = None,
        warm: TrainedModel | None = None,
    ) -> TrainedModel:
        """Train on ``snapshot`` (with ``params`` instead of the trainer's, when given).

        With ``warm`` (the previous refit, of the same number of factors) and
        ``warm_iterations`` above 0, users and items it knew start from its factors and the
        fit runs ``warm_iterations`` sweeps; otherwise every factor starts at random and it
        runs ``iterations``.

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
                warm_start = (
                    warm is not None and p.warm_iterations > 0 and warm.params.factors == p.factors
                )
                model = AlternatingLeastSquares(
                    factors=p.factors,
                    regularization=p.regularization,
                    alpha=p.alpha,
                    iterations=min(p.warm_iterations, p.iterations) if warm_start else p.iterations,
                    num_threads=p.num_threads,
                    random_state=p.random_state,
                )
                if warm_start:
                    # implicit starts from factors already set (random ones otherwise).
                    rng = np.random.default_rng(p.random_state)
                    model.user_factors = carried_over(
                        warm.user_factors, warm.snapshot.user_ids, snapshot.user_ids, rng
                    )
                    model.item_factors = carried_over(
                        warm.item_factors, warm.snapshot.item_ids, snapshot.item_ids, rng
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
            "trained ALS on %d events (%d users x %d items, %d nonzeros), %s, in %.2f s",
            snapshot.n_events,
            snapshot.n_users,
            snapshot.n_items,
            snapshot.matrix.nnz,
            f"{model.iterations} sweeps from the last refit" if warm_start else "from random",
            seconds,
        )
        return TrainedModel(user_factors, item_factors, snapshot, p, seconds)


def carried_over(
    factors: np.ndarray, old_ids: list[str], new_ids: list[str], rng: np.random.Generator
) -> np.ndarray:
    """Rows of ``factors`` (one per ``old_ids``) for ``new_ids``: an id's own row when it had
    one, else small random values as implicit's own initialisation draws them."""
    rows = rng.random((len(new_ids), factors.shape[1]), dtype=np.float32) * 0.01
    position = {key: k for k, key in enumerate(old_ids)}
    new_rows, old_rows = [], []
    for k, key in enumerate(new_ids):
        old = position.get(key)
        if old is not None:
            new_rows.append(k)
            old_rows.append(old)
    rows[new_rows] = factors[old_rows]
    return rows
