"""A faithful re-creation of the seed's serving design, as the load benchmark's reference.

The seed server unpickled the ALS model and reloaded the user-item matrix from disk on every
request, then asked implicit for recommendations, under Flask's development server. This file
exists only to measure that design side by side; pickle is used here because the seed did.

    python -m tests.benchmarks.seed_server DIR PORT
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from flask import Flask, jsonify, request


def write_seed_model(model, directory: Path) -> None:
    """Pickle an implicit ALS model with ``model``'s factors, and save its matrix as .npz."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        als = AlternatingLeastSquares(factors=model.item_factors.shape[1])
    als.user_factors = np.asarray(model.user_factors)
    als.item_factors = np.asarray(model.item_factors)
    snap = model.snapshot
    with open(directory / "model.pkl", "wb") as fh:
        pickle.dump({"model": als, "users": snap.user_ids, "items": snap.item_ids}, fh)
    sp.save_npz(directory / "user_items.npz", snap.seen)


def create_seed_app(directory: Path) -> Flask:
    app = Flask(__name__)

    @app.get("/recommend")
    def recommend():
        with open(directory / "model.pkl", "rb") as fh:
            bundle = pickle.load(fh)  # the seed's design, reproduced for reference
        user_items = sp.load_npz(directory / "user_items.npz").tocsr()
        users = bundle["users"]
        user = request.args["user"]
        row = users.index(user) if user in users else None
        if row is None:
            return jsonify(user=user, items=[])
        ids, scores = bundle["model"].recommend(row, user_items[row], N=int(request.args["n"]))
        return jsonify(
            user=user, items=[bundle["items"][i] for i in ids], scores=[float(s) for s in scores]
        )

    @app.get("/health")
    def health():
        return jsonify(status="ok")

    return app


if __name__ == "__main__":
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, "blas")
    create_seed_app(Path(sys.argv[1])).run(host="127.0.0.1", port=int(sys.argv[2]), threaded=True)
