"""The service's WSGI app as ``recsvc serve`` builds it, for other WSGI servers to import.

Only for tests/benchmarks/wsgi_servers.py: reads the model directory and the metrics directory
from the environment the benchmark sets, which the service itself never does.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from threadpoolctl import threadpool_limits

from recommendation_service.config.server import ServerConfig
from recommendation_service.server.app import create_app
from recommendation_service.server.request_gate import RequestGate

# The same per-worker settings as RecommendationServer.load().
threadpool_limits(1, "blas")
sys.setswitchinterval(0.0005)
_config = ServerConfig(model_dir=Path(os.environ["RECSVC_BENCH_MODEL_DIR"]))
app = RequestGate(create_app(_config), _config.max_body_bytes, _config.client_timeout)
