"""Slow-client check: does /health still answer while clients send as slowly as they can?

    ./run python -m bench.slowloris [--clients 50] [--seconds 15] [--interval 0.5]

Serves the API under gunicorn with the production settings (gunicorn.conf.py, two
workers, on 127.0.0.1), then opens, for each kind of slow client, --clients sockets:

- drip: a request head, one byte every --interval seconds;
- silent: connects and sends nothing;
- body: a complete head announcing a 4 KiB body, then the body one byte at a time;
- hold: a whole request with ``Connection: close``, then neither reads nor closes.

Meanwhile it asks GET /health every 0.25 s, each on a new connection. Bounded: 4 x
--clients sockets, at most --seconds seconds. Prints the /health latencies, and when the
server closed each kind of slow socket. Passes when every /health answered 200 within 1 s
and every drip, silent and body socket was closed by the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import selectors
import socket
import statistics
import sys
import time
import urllib.request

from bench import harness

DRIP = b"GET /health HTTP/1.1\r\nHost: slow\r\nX-Slow: " + b"z" * 4000
BODY_HEAD = (
    b"POST /relay-api/v1/relay-in/coinapi HTTP/1.1\r\nHost: slow\r\n"
    b"Content-Type: application/json\r\nContent-Length: 4096\r\n\r\n"
)
HOLD = b"GET /health HTTP/1.1\r\nHost: slow\r\nConnection: close\r\n\r\n"


def run(port: int, clients: int, seconds: float, interval: float) -> dict:
    kinds: dict[str, list[socket.socket]] = {}
    for kind in ("drip", "silent", "body", "hold"):
        kinds[kind] = [socket.create_connection(("127.0.0.1", port)) for _ in range(clients)]
    for sock in kinds["body"]:
        sock.sendall(BODY_HEAD)
    for sock in kinds["hold"]:
        sock.sendall(HOLD)
    selector = selectors.DefaultSelector()
    for kind in ("drip", "silent", "body"):
        for sock in kinds[kind]:
            selector.register(sock, selectors.EVENT_READ, kind)
    closed: dict[str, list[float]] = {kind: [] for kind in kinds}
    latencies: list[float] = []
    failures: list[str] = []
    started = time.monotonic()
    next_drip = next_probe = started
    position = 0
    try:
        while time.monotonic() - started < seconds:
            now = time.monotonic()
            if now >= next_drip:
                for sock in kinds["drip"] + kinds["body"]:
                    if sock.fileno() >= 0 and position < len(DRIP):
                        with contextlib.suppress(OSError):
                            sock.send(DRIP[position : position + 1] if sock in kinds["drip"]
                                      else b" ")  # fmt: skip
                position += 1
                next_drip = now + interval
            if now >= next_probe:
                probe_started = time.monotonic()
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                        status = r.status
                except OSError as exc:
                    status = type(exc).__name__
                latencies.append(time.monotonic() - probe_started)
                if status != 200:
                    failures.append(str(status))
                next_probe = time.monotonic() + 0.25
            for key, _ in selector.select(max(0.0, min(next_drip, next_probe) - time.monotonic())):
                try:
                    data = key.fileobj.recv(65536)
                except OSError:
                    data = b""
                if not data or key.data == "body":
                    # A body socket is answered once the server gives up on it; done either way.
                    closed[key.data].append(round(time.monotonic() - started, 2))
                    selector.unregister(key.fileobj)
    finally:
        for socks in kinds.values():
            for sock in socks:
                sock.close()
    return {
        "clients_per_kind": clients,
        "health_requests": len(latencies),
        "health_failures": failures,
        "health_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "health_max_ms": round(max(latencies) * 1000, 1),
        "closed": {k: {"count": len(v), "first_s": min(v, default=None),
                       "last_s": max(v, default=None)} for k, v in closed.items() if k != "hold"},
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="sockets of each kind (max 200)")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long (max 120)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between bytes")
    args = parser.parse_args()
    clients, seconds = min(args.clients, 200), min(args.seconds, 120.0)
    with harness.postgres() as server_url:
        env = {
            "DATABASE_URL": harness.fresh_database(server_url),
            "RELAY_JWT_SECRET": harness.SECRET,
        }
        with harness.gunicorn("relay.app:app", env) as url:
            result = run(int(url.rsplit(":", 1)[1]), clients, seconds, args.interval)
    print(json.dumps(result, indent=2))
    closed = result["closed"]
    ok = (
        not result["health_failures"]
        and result["health_max_ms"] < 1000
        and all(closed[k]["count"] == clients for k in ("drip", "silent", "body"))
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
