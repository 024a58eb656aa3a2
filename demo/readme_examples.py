#!/usr/bin/env python3
"""Regenerate the README's HTTP examples from a live ``recsvc demo``.

    python demo/readme_examples.py            # print the example blocks
    python demo/readme_examples.py --write    # replace them in README.md

Each example block in README.md follows a ``<!-- api-example: NAME -->`` line. The script
starts the demo on free ports, waits for its eighth model version, sends each documented request
and writes the real responses (shown on port 5000, the demo's default), so the examples always
match what the current code answers.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
USER = "user-00000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Demo:
    """``recsvc demo`` on free ports, its admin token read from what it prints."""

    def __init__(self) -> None:
        self.port = free_port()
        self.token: str | None = None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "recommendation_service", "--log-level", "warning", "demo",
             "--http-port", str(self.port), "--port", str(free_port()), "--metrics-port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("admin token"):
                self.token = line.rsplit(" ", 1)[1].strip()

    def call(self, method: str, path: str, body=None, token: bool = False) -> str:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.read().decode().strip()
        except urllib.error.HTTPError as exc:
            return exc.read().decode().strip()

    def wait_for_version(self, version: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if (json.loads(self.call("GET", "/health")).get("model_version") or 0) >= version:
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        raise SystemExit("the demo did not publish in time")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def curl(method: str, path: str, body=None, token: bool = False) -> str:
    parts = ["curl"]
    if method != "GET":
        parts += ["-X", method]
    parts.append(f"'localhost:5000{path}'")
    if token:
        parts.append('-H "Authorization: Bearer $TOKEN"')
    if body is not None:
        parts.append(f"-H 'Content-Type: application/json' -d '{json.dumps(body)}'")
    return "$ " + " ".join(parts)


def examples(demo: Demo) -> dict[str, str]:
    def run(*steps) -> str:
        lines = []
        for method, path, body, token, *pause in steps:
            if pause:
                time.sleep(pause[0])
            lines += [curl(method, path, body, token), demo.call(method, path, body, token)]
        return "\n".join(lines)

    samples = {"samples": [
        {"user_id": "me", "item_id": "garden-0003", "action_type": "purchase"},
        {"user_id": "me", "item_id": "garden-0007", "label": 0},
        {"user_id": "", "item_id": "x"},
    ]}  # fmt: skip
    out = {
        "recommend": run(
            ("GET", f"/recommend?user={USER}&n=5", None, False),
            ("GET", "/recommend?user=nobody&n=3", None, False),
        ),
        "recommend-error": run(("GET", "/recommend?n=3", None, False)),
        "health": run(("GET", "/health", None, False)),
        "data-add": run(
            ("POST", "/online/data/add", samples, False),
            ("GET", "/recommend?user=me&n=3", None, False, 1.0),
        ),
    }
    top = json.loads(demo.call("GET", f"/recommend?user={USER}&n=1"))["items"][0]
    seen = "books-0001"
    out["rank"] = run(
        ("POST", "/recommend", {"user_id": USER, "candidate_items": [top, seen, "no-such-item"],
                                "top_k": 3}, False),
    )  # fmt: skip
    out["predict"] = run(("POST", "/predict", {"user_id": USER, "item_ids": [top, seen]}, False))
    out["similar"] = run(("GET", f"/similar?item={top}&n=3", None, False))
    out["associations"] = run(("GET", f"/items/{top}/associations?n=2", None, False))
    out["popular"] = run(("GET", "/popular?n=3", None, False))
    out["rules"] = run(
        ("GET", f"/recommend?user={USER}&n=4&rule=cheap&max=20", None, False),
        ("GET", f"/recommend?user={USER}&n=6&promote=on_sale:1&diversify=category&max_per=2",
         None, False),
        ("GET", "/recommend?user=user-00001&n=4", None, False),
    )  # fmt: skip
    out["experiments"] = run(("GET", "/experiments", None, False))
    report = subprocess.run(
        [sys.executable, "-m", "recommendation_service", "experiment", "report", "--url",
         f"http://127.0.0.1:{demo.port}"], capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    out["experiment-report"] = "$ recsvc experiment report\n" + report
    out["model"] = run(("GET", "/model/info", None, False), ("GET", "/model/versions", None, False))
    versions = [v["version"] for v in json.loads(demo.call("GET", "/model/versions"))["versions"]]
    out["rollback"] = run(
        ("POST", "/model/rollback", {"version": versions[1]}, True),
        ("POST", "/model/rollback", {"version": versions[1]}, False),
        ("POST", "/model/rollback", {"version": "latest"}, True),
    )
    out["training"] = run(
        ("GET", "/online/training/status", None, False),
        ("POST", "/online/training/start", None, True),
    )
    return out


def write(blocks: dict[str, str]) -> None:
    text = README.read_text(encoding="utf-8")
    for name, block in blocks.items():
        pattern = re.compile(
            rf"(<!-- api-example: {re.escape(name)} -->\n```console\n).*?(\n```)", re.S
        )
        text, count = pattern.subn(lambda m, b=block: m.group(1) + b + m.group(2), text)
        if count != 1:
            raise SystemExit(f"README.md has {count} blocks marked api-example: {name}")
    README.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="replace the blocks in README.md")
    args = parser.parse_args()
    demo = Demo()
    try:
        demo.wait_for_version(8)
        time.sleep(5)
        blocks = examples(demo)
    finally:
        demo.stop()
    if args.write:
        write(blocks)
        print(f"rewrote {len(blocks)} example blocks in {README}")
    else:
        for name, block in blocks.items():
            print(f"<!-- api-example: {name} -->\n```console\n{block}\n```\n")


if __name__ == "__main__":
    main()
