"""The market-scale step: catch up hundreds of Binance symbols, concurrently and serially.

    ./run python -m bench.market [--symbols 300] [--minutes 120] [--latency 0.05]

A threaded loopback Binance (the tests' FakeBinance: Binance's klines, tickers and
exchangeInfo formats, request weights and its 6000-a-minute limit, 429 past it) holds ``--symbols`` symbols, each ``--minutes``
behind, and answers every request after ``--latency`` seconds. relay-in is called with
``{"symbols": ["*"]}`` until every symbol is caught up (repeated calls when the 20 s budget
ends), first with RELAY_IN_CONCURRENCY=8, then 1. Prints wall time, calls, upstream
requests, their weight, requests in flight at most, and rows/s. Loopback only, bounded.
"""

from __future__ import annotations

import argparse
import logging
import time
from datetime import UTC, datetime, timedelta

import psycopg
import webtest
from pytest_httpserver import HTTPServer

from bench import harness
from relay import db
from relay.app import create_app
from relay.config import Config
from tests.upstreams import FakeBinance, make_klines

MAX_CALLS = 50


def catch_up(db_url: str, binance: FakeBinance, base: str, concurrency: int) -> dict:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE binance_candle, binance_candle_1h, binance_candle_1d, binance_ticker,"
            " relay_run CASCADE"
        )
    binance.requests.clear()
    binance.used_weight = binance.max_in_flight = binance.rejected = 0
    pool = db.make_pool(db_url, min_size=1, max_size=4, timeout=10, open=True)
    config = Config(database_url=db_url, jwt_secrets=(harness.SECRET,)).replace(
        binance_url=base,
        binance_backfill_hours=3,
        relay_in_concurrency=concurrency,
        upstream_timeout_s=10,
    )
    app = webtest.TestApp(create_app(config, pool))
    headers = {"Authorization": f"Bearer {harness.token('relay:in')}"}
    started = time.perf_counter()
    calls, rows, complete = 0, 0, False
    while not complete and calls < MAX_CALLS:
        calls += 1
        resp = app.post_json("/relay-api/v1/relay-in/binance", {"symbols": ["*"]}, headers=headers)
        data = resp.json["data"] if resp.status_int != 204 else {"processed": 0, "complete": True}
        rows += data["processed"]
        complete = data["complete"]
    elapsed = time.perf_counter() - started
    pool.close()
    return {
        "concurrency": concurrency,
        "seconds": elapsed,
        "calls": calls,
        "complete": complete,
        "requests": len(binance.requests),
        "weight": binance.used_weight,
        "in_flight_max": binance.max_in_flight,
        "rejected_429": binance.rejected,
        "rows": rows,
        "rows_per_s": rows / elapsed,
    }


def measure(db_url: str, symbols: int = 300, minutes: int = 120, latency: float = 0.05) -> dict:
    """Catch ``symbols`` symbols up, concurrently (8) then serially (1), over ``db_url``."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    try:
        binance = FakeBinance(server, latency_s=latency, weight_limit=6000)
        for index in range(symbols):
            start = now - timedelta(minutes=minutes)
            binance.add(f"M{index:04d}USDT", make_klines(start, minutes, seed=index))
        base = server.url_for("/").rstrip("/")
        runs = [catch_up(db_url, binance, base, concurrency) for concurrency in (8, 1)]
    finally:
        server.clear()
        server.stop()
    return {"symbols": symbols, "minutes": minutes, "latency_s": latency, "runs": runs}


def table(result: dict) -> str:
    lines = [
        f"{result['symbols']} symbols x {result['minutes']} min behind, "
        f"{result['latency_s'] * 1000:.0f} ms an answer",
        "| concurrency | seconds | calls | requests | weight | in flight max | 429s | rows "
        "| rows/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['concurrency']} | {r['seconds']:.2f} | {r['calls']} | {r['requests']} | "
            f"{r['weight']} | {r['in_flight_max']} | {r['rejected_429']} | {r['rows']:,} | "
            f"{r['rows_per_s']:,.0f} |"
        )
    concurrent, serial = result["runs"]
    lines.append(f"concurrent / serial time: {concurrent['seconds'] / serial['seconds']:.2f}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.market", description=__doc__)
    parser.add_argument("--symbols", type=int, default=300, choices=range(1, 1001), metavar="N")
    parser.add_argument("--minutes", type=int, default=120, choices=range(1, 1441), metavar="M")
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    latency = min(max(args.latency, 0.0), 1.0)
    with harness.postgres() as server_url:
        result = measure(harness.fresh_database(server_url), args.symbols, args.minutes, latency)
    print(table(result), end="")


if __name__ == "__main__":
    main()
