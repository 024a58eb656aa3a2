"""Separate hosts on one machine: Linux network namespaces joined by veth pairs (needs root).

Each host gets two links, like a server in a data centre:

* a **front** link on a bridge the test (the "load balancer") reaches it through, and
* a **back** link on a second bridge where the broker and the object store listen.

Cutting a host's back link (:meth:`Hosts.cut`) takes it off the store and the broker while
clients can still reach it; :meth:`Hosts.restore` reconnects it.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import uuid
from pathlib import Path


def netns_unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no `ip` (iproute2)"
    probe = f"recsvc-probe-{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str, ns: str | None = None) -> None:
    command = ["ip", *(["-n", ns] if ns else []), *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")


class Hosts:
    """``n`` hosts in network namespaces; the root namespace holds both bridges.

    Attributes
    ----------
    back_ip
        The root namespace's address on the back bridge: start brokers and stores on it.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.tag = uuid.uuid4().hex[:5]
        # Two /24s unlikely to be in use: 10.<random>.<random>.0 and the next one.
        a, b = random.randint(100, 250), random.randrange(0, 254, 2)
        self._front, self._back = f"10.{a}.{b}", f"10.{a}.{b + 1}"
        self.back_ip = f"{self._back}.1"
        self.names = [f"rs{self.tag}h{i}" for i in range(n)]

    def front_ip(self, i: int) -> str:
        """Where clients reach host ``i``."""
        return f"{self._front}.{i + 2}"

    def prefix(self, i: int) -> list[str]:
        """Command prefix that runs a program on host ``i``."""
        return ["ip", "netns", "exec", self.names[i]]

    def _bridge(self, side: str) -> str:
        return f"rs{self.tag}{side}"

    def _veth(self, i: int, side: str) -> str:
        return f"rs{self.tag}{side}{i}"  # the root end; at most 15 characters

    def start(self) -> Hosts:
        try:
            for side, net in (("f", self._front), ("b", self._back)):
                _ip("link", "add", self._bridge(side), "type", "bridge")
                _ip("addr", "add", f"{net}.1/24", "dev", self._bridge(side))
                _ip("link", "set", self._bridge(side), "up")
            for i, name in enumerate(self.names):
                _ip("netns", "add", name)
                _ip("link", "set", "lo", "up", ns=name)
                for side, net in (("f", self._front), ("b", self._back)):
                    inner = "eth0" if side == "f" else "eth1"
                    _ip("link", "add", self._veth(i, side), "type", "veth", "peer", "name",
                        f"rs{self.tag}{side}{i}x")  # fmt: skip
                    _ip("link", "set", f"rs{self.tag}{side}{i}x", "netns", name)
                    _ip("link", "set", f"rs{self.tag}{side}{i}x", "name", inner, ns=name)
                    _ip("addr", "add", f"{net}.{i + 2}/24", "dev", inner, ns=name)
                    _ip("link", "set", inner, "up", ns=name)
                    _ip("link", "set", self._veth(i, side), "master", self._bridge(side))
                    _ip("link", "set", self._veth(i, side), "up")
        except Exception:
            self.close()
            raise
        return self

    def serve(self, tmp: Path, store: str, env: dict, *extra: str, workers: int = 2):
        """``recsvc serve --model-store`` on every host, each with its own model directory in
        ``tmp``; returns (base URLs, processes)."""
        from .processes import free_port, recsvc

        port = free_port()
        urls = [f"http://{self.front_ip(i)}:{port}" for i in range(self.n)]
        procs = [
            recsvc("serve", "--model-dir", str(tmp / f"host{i}"), "--host", "0.0.0.0", "--port",
                   str(port), "--workers", str(workers), "--no-access-log", "--model-store",
                   store, *extra, log_path=tmp / f"host{i}.log", env=env, host=self.prefix(i))
            for i in range(self.n)
        ]  # fmt: skip
        return urls, procs

    def cut(self, i: int) -> None:
        """Take host ``i`` off the back network (store and broker); clients still reach it."""
        _ip("link", "set", self._veth(i, "b"), "down")

    def restore(self, i: int) -> None:
        _ip("link", "set", self._veth(i, "b"), "up")

    def close(self) -> None:
        for name in self.names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        for side in ("f", "b"):
            subprocess.run(["ip", "link", "del", self._bridge(side)], capture_output=True)

    def __enter__(self) -> Hosts:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
