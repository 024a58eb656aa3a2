"""A model version as servers hold it: its data (version.py) and its request pipeline
(pipeline.py), created together when a version is loaded and dropped together when the next
one is served."""

from __future__ import annotations

import numpy as np

from ..data.catalog import CatalogSnapshot
from ..data.erasures import ErasureLedger
from ..rules.item_rules import NO_RULES, ItemRules
from ..vectors.sequences import SequenceWeights
from .pipeline import RecommendPipeline
from .request import NO_EXPLORATION, NO_SHAPE, ExploreParams, ListShape, RecommendRequest
from .result import Recommendation
from .version import ModelVersion


class ServedModel(ModelVersion):
    """One verified model version, ready to answer requests: a :class:`ModelVersion` (same
    parameters and errors) with its :class:`RecommendPipeline`."""

    def __init__(
        self,
        manifest: dict,
        arrays: dict[str, np.ndarray],
        index=None,
        ef: int = 128,
        erasures: ErasureLedger | None = None,
    ) -> None:
        super().__init__(manifest, arrays, index, ef, erasures)
        self.pipeline = RecommendPipeline(self.item_ids)

    def recommend(
        self,
        user: str,
        n: int,
        rules: ItemRules = NO_RULES,
        catalog: CatalogSnapshot | None = None,
        shape: ListShape = NO_SHAPE,
        explore: ExploreParams = NO_EXPLORATION,
        sequence: SequenceWeights | None = None,
        ranker: str | None = None,
    ) -> Recommendation:
        """Top ``n`` items for ``user``, best first (see pipeline.py for the stages);
        ``sequence`` overrides the sequence term's weights the version was published with,
        ``ranker`` the ranker its refit chose."""
        request = RecommendRequest(user, n, rules, catalog, shape, explore, sequence, ranker)
        return self.pipeline.run(self, request)

    def allowed_columns(
        self, rules: ItemRules, catalog: CatalogSnapshot | None
    ) -> np.ndarray | None:
        """Which item columns ``rules`` allow with ``catalog`` (None: all of them)."""
        return self.pipeline.masks.allowed(rules, catalog)
