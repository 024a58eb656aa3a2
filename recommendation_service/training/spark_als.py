"""Training the same implicit-feedback ALS with Spark MLlib (``--trainer spark``).

For windows that outgrow one builder's cores. It fits on exactly the snapshot
:class:`~recommendation_service.training.als.ALSTrainer` gets and returns the same
:class:`~recommendation_service.training.trained_model.TrainedModel` (factors in the snapshot's
user and item order), so publishing, fold-in, serving and evaluation do not know which trainer ran.

The snapshot's (user, item, weight) triples go to Spark as a CSV file in ``scratch_dir``
(executors must see that path: the default temporary directory suits ``local[*]``; for a
cluster give a shared mount) -- no pickled Python objects cross into the JVM. Spark's implicit
ALS scales its L2 penalty by each user's (item's) number of ratings while implicit's is flat,
so ``regParam`` is the configured regularization divided by the mean events per user: the
same penalty for a user of average activity. Spark's confidence is ``1 + alpha * weight``,
implicit's ``alpha * weight`` on observed pairs -- the same up to the constant.

pyspark is optional (``pip install 'recommendation-service[spark]'``) and runs on the Java 17+
the broker runs on: ``JAVA_HOME``'s, ``java`` on PATH, else the OpenJDK runtime installed with
this package (:mod:`~recommendation_service.common.java_runtime`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from ..common.java_runtime import find_java
from ..data.window import WindowSnapshot
from ..errors import ConfigError, JavaNotFound, ModelFitError
from .params import ALSParams
from .trained_model import TrainedModel

logger = logging.getLogger(__name__)


def spark_unavailable() -> str | None:
    """Why the Spark trainer cannot run here, or None."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed: pip install 'recommendation-service[spark]'"
    try:
        find_java()
    except JavaNotFound as exc:
        return f"Spark needs Java 17+: {exc}"
    return None


def _point_spark_at_java() -> None:
    """Make pyspark's launcher run the chosen Java: JAVA_HOME is the one way to tell it (its
    gateway is started from this process's environment, with no argument for it)."""
    runtime = find_java()
    if runtime.source != "JAVA_HOME":
        os.environ["JAVA_HOME"] = str(runtime.home)
        logger.info("Spark runs %s", runtime.describe())


class SparkALSTrainer:
    """Fits :class:`pyspark.ml.recommendation.ALS` (implicit preferences) on window snapshots.

    Parameters
    ----------
    params
        Hyper-parameters used for every fit (mapped onto Spark's as the module explains).
    master
        Spark master URL: ``local[2]``, ``spark://host:7077``, ``yarn``...
    scratch_dir
        Where snapshots are written for the executors to read (default: a temporary dir).
    """

    name = "spark"

    def __init__(
        self, params: ALSParams, master: str = "local[2]", scratch_dir: Path | None = None
    ) -> None:
        reason = spark_unavailable()
        if reason is not None:
            raise ConfigError(f"--trainer spark: {reason}")
        self.params, self.master = params, master
        self.scratch_dir = Path(scratch_dir or tempfile.gettempdir())
        self._spark = None

    def session(self):
        """The Spark session, started on the first fit (a JVM: seconds)."""
        if self._spark is None:
            from pyspark.sql import SparkSession

            _point_spark_at_java()
            start = time.perf_counter()
            self._spark = (
                SparkSession.builder.master(self.master)
                .appName("recsvc-builder")
                .config("spark.ui.enabled", "false")
                .config("spark.sql.shuffle.partitions", "8")
                .config("spark.driver.memory", "2g")
                .config("spark.ui.showConsoleProgress", "false")
                .getOrCreate()
            )
            self._spark.sparkContext.setLogLevel("WARN")
            # ALS checkpoints every 10 iterations only with a directory; without one, the
            # lineage of 15 sweeps overflowed the JVM's stack on a 1,000,000-event window.
            checkpoints = self.scratch_dir / f"recsvc-checkpoints-{uuid.uuid4().hex[:8]}"
            self._spark.sparkContext.setCheckpointDir(str(checkpoints))
            self._checkpoints = checkpoints
            logger.info("Spark session on %s in %.1f s", self.master, time.perf_counter() - start)
        return self._spark

    def fit(
        self,
        snapshot: WindowSnapshot,
        params: ALSParams | None = None,
        warm: TrainedModel | None = None,
    ) -> TrainedModel:
        """Train on ``snapshot`` (with ``params`` instead of the trainer's, when given).

        ``warm`` is accepted for the trainers' common signature and not used: Spark's ALS
        has no initial factors, so every Spark refit starts from random ones.

        Raises
        ------
        ModelFitError
            If the snapshot is empty, Spark fails, or the factors come out non-finite.
        """
        if snapshot.matrix.nnz == 0:
            raise ModelFitError("cannot train on an empty window")
        p = params or self.params
        start = time.perf_counter()
        coo = snapshot.matrix.tocoo()
        path = self.scratch_dir / f"recsvc-window-{uuid.uuid4().hex}.csv"
        try:
            np.savetxt(path, np.column_stack([coo.row, coo.col, coo.data]), fmt="%d,%d,%.7g")
            users, items = self._fit_file(path, p, coo.nnz / max(1, snapshot.n_users))
        except ModelFitError:
            raise
        except Exception as exc:  # py4j and Spark raise many types; give callers one
            raise ModelFitError(f"Spark ALS fit failed: {exc}") from exc
        finally:
            path.unlink(missing_ok=True)
        user_factors = _dense(users, snapshot.n_users, p.factors)
        item_factors = _dense(items, snapshot.n_items, p.factors)
        if not (np.isfinite(user_factors).all() and np.isfinite(item_factors).all()):
            raise ModelFitError("Spark ALS produced non-finite factors")
        seconds = time.perf_counter() - start
        logger.info(
            "trained Spark ALS (%s) on %d events (%d users x %d items) in %.2f s",
            *(self.master, snapshot.n_events, snapshot.n_users, snapshot.n_items, seconds),
        )
        return TrainedModel(user_factors, item_factors, snapshot, p, seconds, trainer="spark")

    def _fit_file(self, path: Path, p: ALSParams, per_user: float):
        from pyspark.ml.recommendation import ALS

        spark = self.session()
        frame = spark.read.csv(str(path), schema="user INT, item INT, weight FLOAT")
        als = ALS(
            rank=p.factors,
            maxIter=p.iterations,
            regParam=p.regularization / per_user,
            alpha=p.alpha,
            implicitPrefs=True,
            userCol="user",
            itemCol="item",
            ratingCol="weight",
            seed=p.random_state if p.random_state is not None else 0,
        )
        model = als.fit(frame)
        return self._factors(model.userFactors), self._factors(model.itemFactors)

    def _factors(self, frame) -> np.ndarray:
        """(id, features...) rows of a factor frame, through text files in the scratch dir
        (scales with the model, and no Python objects travel over the JVM socket)."""
        out = self.scratch_dir / f"recsvc-factors-{uuid.uuid4().hex}"
        line = "concat_ws(',', cast(id as string), transform(features, x -> cast(x as string)))"
        try:
            frame.selectExpr(line).write.text(str(out))
            parts = [np.loadtxt(f, delimiter=",", ndmin=2) for f in sorted(out.glob("part-*"))]
            parts = [x for x in parts if x.size]
            return np.concatenate(parts) if parts else np.zeros((0, 1))
        finally:
            shutil.rmtree(out, ignore_errors=True)

    def stop(self) -> None:
        if self._spark is not None:
            self._spark.stop()
            self._spark = None
            shutil.rmtree(self._checkpoints, ignore_errors=True)


def _dense(rows: np.ndarray, n: int, factors: int) -> np.ndarray:
    """Spark's (id, features...) rows as an (n, factors) array; ids Spark lacks stay zero."""
    out = np.zeros((n, factors), dtype=np.float32)
    if len(rows):
        out[rows[:, 0].astype(np.int64)] = rows[:, 1 : factors + 1]
    return out
