"""The service as production runs it: gunicorn with gunicorn.conf.py, on a loopback port.

For what WebTest cannot show: the worker's handling of the socket (slow clients, chunked
bodies, gunicorn's own limits) and the processes themselves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclasses.dataclass
class Served:
    url: str
    port: int
    proc: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def gunicorn(env: dict[str, str], log: Path, *, start_timeout_s: float = 30) -> Iterator[Served]:
    """Run ``relay.app:app`` under gunicorn.conf.py with ``env`` over ours; stop it after."""
    port = free_port()
    full = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    full.update({"PORT": str(port), "WEB_CONCURRENCY": "2", "RELAY_BIND": "127.0.0.1", **env})
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "relay.app:app"],
            cwd=ROOT,
            env=full,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(f"http://127.0.0.1:{port}", port, proc, log)
    try:
        deadline = time.monotonic() + start_timeout_s
        while not healthy(served.url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{served.log_text()[-4000:]}")
            time.sleep(0.2)
        yield served
    finally:
        stop(proc, grace_s=30)


def healthy(base: str) -> bool:
    """Whether the server at ``base`` answers /health with 200 now."""
    try:
        return requests.get(f"{base}/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def stop(proc: subprocess.Popen, *, grace_s: float) -> None:
    """SIGTERM (unless it has exited), ``grace_s`` to finish, then SIGKILL."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def listening_addresses(port: int) -> set[str]:
    """The local IPv4 addresses listening on ``port``, read from /proc/net/tcp."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        host, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(host)[::-1]))
    return found
