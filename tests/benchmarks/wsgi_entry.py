"""The service's Flask app as ``recsvc serve`` builds it, for other WSGI servers to import.

Only for tests/benchmarks/wsgi_servers.py: reads the model directory from the environment the
benchmark sets, which the service itself never does. ``recsvc serve`` puts the app behind its
RSGI bridge (bounded bodies); other servers get the bare app, which reads the body itself.
"""

from __future__ import annotations

import os
from pathlib import Path

from recommendation_service.config.server import ServerConfig
from recommendation_service.server.app import create_app
from recommendation_service.server.granian_runner import prepare_worker

prepare_worker()  # the per-worker settings recsvc serve's workers get
app = create_app(ServerConfig(model_dir=Path(os.environ["RECSVC_BENCH_MODEL_DIR"])))
