"""``recsvc demo``: the whole system on one machine, in one command.

Starts Apache Kafka, then the builder and the server as child processes (as they would run in
production), publishes the demo catalog, streams synthetic interactions, waits for the first
model, prints what to curl, and stops everything in order on Ctrl-C.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import click

from ..common.java_runtime import find_java
from ..common.threads import StopFlag
from .broker_process import port_open
from .brokers import ensure_topic
from .demo_shopper import shop
from .kafka_broker import DEFAULT_HEAP, ApacheKafkaBroker
from .kafka_jars import DEFAULT_REPOSITORY
from .synthetic import TasteModel, make_catalog

logger = logging.getLogger(__name__)

DEMO_SEED = 7
DEMO_CATEGORIES = 8
#: The demo server's rules file: two named rules and an A/B experiment that gives half of the
#: users two slots of sale items (the demo shoppers' clicks then show how that does).
DEMO_RULES = """\
[rules]
cheap = "price < $max"
on_sale = "'sale' in tags"

[experiment]
name = "demo-sale-slots"
# With this salt user-00000 (the one the demo prints) is in control, user-00001 gets sale slots.
salt = "demo-11"
[[experiment.variants]]
name = "control"
share = 1
[[experiment.variants]]
name = "sale-slots"
share = 1
promote = "on_sale:2"
"""


@dataclass(frozen=True)
class DemoSettings:
    broker_port: int = 9092
    http_port: int = 5000
    metrics_port: int = 9108
    kafka_libs: Path | None = None
    maven_repository: str = DEFAULT_REPOSITORY
    kafka_heap: str = DEFAULT_HEAP
    model_dir: Path | None = None
    rate: float = 200.0
    users: int = 200
    items: int = 400
    window: int = 20_000
    retrain_every: int = 1000
    duration: float = 0.0


def _recsvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "recommendation_service", *args]


def _get_json(url: str, timeout: float = 2.0) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _wait_for_model(url: str, children: dict[str, subprocess.Popen], stop: StopFlag):
    while not stop.is_set():
        _check_children(children)
        try:
            status, body = _get_json(f"{url}/health")
            if status == 200:
                return body
        except (OSError, ValueError):
            pass
        stop.wait(0.5)
    return None


def _check_children(children: dict[str, subprocess.Popen]) -> None:
    for name, proc in children.items():
        code = proc.poll()
        if code is not None and not (name == "item-producer" and code == 0):
            raise click.ClickException(f"the {name} exited unexpectedly with code {code}")


def _stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _check_ports(s: DemoSettings) -> None:
    """Refuse to start when a port the demo needs is taken, naming the option that moves it."""
    wanted = [("HTTP", s.http_port, "--http-port"), ("broker", s.broker_port, "--port")]
    if s.metrics_port:
        wanted.append(("builder metrics", s.metrics_port, "--metrics-port (0 turns them off)"))
    taken = [f"{what} port {port} (move it with {option})" for what, port, option in wanted
             if port_open("127.0.0.1", port)]  # fmt: skip
    if taken:
        raise click.ClickException("in use on 127.0.0.1: " + "; ".join(taken))


def run_demo(s: DemoSettings) -> None:
    """Run the demo until Ctrl-C (or ``s.duration`` seconds)."""
    _check_ports(s)
    tmp = None
    model_dir = s.model_dir
    if model_dir is None:
        tmp = tempfile.mkdtemp(prefix="recsvc-demo-")
        model_dir = Path(tmp)
    tmp_rules = tempfile.mkdtemp(prefix="recsvc-demo-rules-")
    stop = StopFlag()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    click.echo(f"broker: Apache Kafka on {find_java().describe()}")
    broker = ApacheKafkaBroker(
        "127.0.0.1", s.broker_port, libs_dir=s.kafka_libs, repository=s.maven_repository,
        heap=s.kafka_heap,
    )  # fmt: skip
    # Hex: never starts with "-", so it is safe wherever it is pasted as an argument.
    admin_token = secrets.token_hex(16)
    children: dict[str, subprocess.Popen] = {}
    try:
        click.echo(f"starting {broker.description} on 127.0.0.1:{s.broker_port} ...")
        broker.start()
        bootstrap = broker.bootstrap_servers
        for topic in ("interactions", "items", "impressions"):
            ensure_topic(bootstrap, topic)
        rules_file = Path(tmp_rules) / "rules.toml"
        rules_file.write_text(DEMO_RULES)
        common = [
            "--bootstrap-servers",
            bootstrap,
            "--seed",
            str(DEMO_SEED),
            "--items",
            str(s.items),
            "--categories",
            str(DEMO_CATEGORIES),
        ]
        children["builder"] = subprocess.Popen(
            _recsvc(
                "builder",
                "--bootstrap-servers",
                bootstrap,
                "--model-dir",
                str(model_dir),
                "--window",
                str(s.window),
                "--retrain-every",
                str(s.retrain_every),
                "--metrics-port",
                str(s.metrics_port),
                "--impressions-topic",
                "impressions",
            )
        )
        children["server"] = subprocess.Popen(
            _recsvc(
                "serve",
                "--model-dir",
                str(model_dir),
                "--port",
                str(s.http_port),
                "--no-access-log",
                "--bootstrap-servers",
                bootstrap,
                "--rules-file",
                str(rules_file),
            ),
            # Through the environment, not argv, where `ps` would show it to every user.
            env={**os.environ, "RECSVC_SERVE_ADMIN_TOKEN": admin_token},
        )
        children["item-producer"] = subprocess.Popen(_recsvc("item-producer", *common))
        children["interactions-producer"] = subprocess.Popen(
            _recsvc(
                "user-interactions-producer",
                *common,
                "--users",
                str(s.users),
                "--rate",
                str(s.rate),
            )
        )
        url = f"http://127.0.0.1:{s.http_port}"
        click.echo(f"waiting for the first model (after {s.retrain_every} events) ...")
        health = _wait_for_model(url, children, stop)
        if health is not None:
            _print_try_it(url, health, s, admin_token)
            tastes = TasteModel(
                make_catalog(s.items, DEMO_CATEGORIES, DEMO_SEED), s.users, seed=DEMO_SEED
            )
            shopper = threading.Thread(
                target=shop, args=(url, dict(tastes.favourite), stop), daemon=True
            )
            shopper.start()
        deadline = time.monotonic() + s.duration if s.duration > 0 else None
        while not stop.wait(0.5):
            _check_children(children)
            if deadline is not None and time.monotonic() > deadline:
                break
    finally:
        click.echo("stopping the demo ...")
        for name in ("interactions-producer", "item-producer", "builder", "server"):
            if name in children:
                _stop(children[name])
        broker.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(tmp_rules, ignore_errors=True)
    click.echo("demo stopped")


def _print_try_it(url: str, health: dict, s: DemoSettings, admin_token: str) -> None:
    tastes = TasteModel(make_catalog(s.items, DEMO_CATEGORIES, DEMO_SEED), s.users, seed=DEMO_SEED)
    user = tastes.users[0]
    click.echo("")
    click.echo(f"model version {health['model_version']} is being served at {url}")
    click.echo(f"{user} mostly interacts with '{tastes.favourite[user]}' items. Try:")
    click.echo(f"  curl '{url}/recommend?user={user}&n=5'")
    click.echo(f"  curl '{url}/recommend?user=someone-new&n=5'   # unknown user: popular items")
    click.echo(
        f"  curl '{url}/recommend?user={user}&n=5&max_price=30&tags=sale'   # catalog filters"
    )
    click.echo(
        f"  curl '{url}/recommend?user={user}&n=5&rule=cheap&max=20'   # a named rule (rules file)"
    )
    click.echo(
        f"  curl '{url}/recommend?user={tastes.users[1]}&n=5'   # its 'variant' and "
        "'recommendation_id' in the demo's A/B experiment"
    )
    click.echo(f"  recsvc experiment report --url {url}   # demo shoppers click; results so far")
    click.echo(f"  curl '{url}/health'")
    click.echo(f"  curl '{url}/similar?item={tastes.favourite[user]}-0001&n=5'")
    click.echo(
        f"  curl -X POST {url}/online/data/add -H 'Content-Type: application/json' "
        f"""-d '{{"samples": [{{"user_id": "me", "item_id": "garden-0003", """
        f""""action_type": "purchase"}}]}}'"""
    )
    click.echo(f"  curl '{url}/recommend?user=me&n=5'   # a moment later: personalised")
    click.echo(f"dashboard: {url}/dashboard   (it asks for the admin token below)")
    click.echo(f"admin token for this run (dashboard, rollback, training start): {admin_token}")
    click.echo(f"API description: {url}/openapi.json")
    click.echo("new models are published as events stream in; press Ctrl-C to stop.\n")
