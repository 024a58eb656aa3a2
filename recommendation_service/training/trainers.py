"""The trainers ``--trainer`` can name: each fits ALS on a window snapshot and returns a
:class:`~recommendation_service.training.trained_model.TrainedModel`, so publishing, fold-in,
serving and evaluation do not know which one ran."""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .als import ALSTrainer
from .params import ALSParams
from .spark_als import SparkALSTrainer

TRAINERS = ("implicit", "spark")


def make_trainer(
    kind: str, params: ALSParams, spark_master: str = "local[2]", scratch_dir: Path | None = None
):
    """The trainer named by ``--trainer``."""
    if kind == "implicit":
        return ALSTrainer(params)
    if kind == "spark":
        return SparkALSTrainer(params, spark_master, scratch_dir)
    raise ConfigError(f"unknown trainer {kind!r}: expected one of {', '.join(TRAINERS)}")
