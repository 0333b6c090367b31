"""Where a relay-in's CPU goes: the thread fetching pages beside the thread storing them.

    ./run python -m bench.ingest_cpu [--source coinapi|binance] [--rows N] [--runs 3]

The loopback upstream (pre-rendered pages, as in ``./run bench``) runs in a process of
its own, so its CPU is not counted; one relay-in at a time runs through the whole app
(WebTest, real PostgreSQL). Each page's fetch and parse, its fold (candles) and each
batch's store are timed as they run, in CPU seconds of their own thread
(``time.thread_time``) and in wall seconds. The pipeline goes as fast as the slower
side: fetch and fold, or store (whose wall time is mostly PostgreSQL's).
"""

from __future__ import annotations

import argparse
import collections
import functools
import multiprocessing
import time

import psycopg

from bench import harness, profile_ingest
from relay.sources.binance.relay_in import BinanceRelayIn
from relay.sources.coinapi.relay_in import CoinAPIRelayIn

TIMED = ("fetch_page", "digest", "store_pages")


def serve(source: str, rows: int, ready: multiprocessing.Queue) -> None:
    pages = harness.PageServer()
    profile_ingest.add_rows(pages, source, rows)
    ready.put(pages.url)
    time.sleep(3600)  # until the parent ends it


def timing(spent: collections.Counter, cls: type, name: str) -> None:
    """Count the CPU and wall time of ``cls.name`` on whichever thread runs it."""
    method = getattr(cls, name)

    @functools.wraps(method)
    def timed(self, *args, **kwargs):
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            spent[f"{name} cpu"] += time.thread_time() - cpu
            spent[f"{name} wall"] += time.perf_counter() - wall

    setattr(cls, name, timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", choices=["coinapi", "binance"], default="binance")
    parser.add_argument("--rows", type=int, default=None, help="200,000 trades or 100,000 klines")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = args.rows or profile_ingest.ROWS[args.source]
    ready: multiprocessing.Queue = multiprocessing.Queue()
    upstream = multiprocessing.Process(target=serve, args=(args.source, rows, ready), daemon=True)
    upstream.start()
    url = ready.get(timeout=120)
    spent: collections.Counter = collections.Counter()
    # On the relay-in classes themselves: a call up to a base class is inside the timing.
    for cls in (BinanceRelayIn, CoinAPIRelayIn):
        for name in TIMED:
            timing(spent, cls, name)
    try:
        with harness.postgres() as server_url:
            database = harness.fresh_database(server_url)
            app = profile_ingest.relay_in_app(database, url, rows)
            for _ in range(args.runs):
                with psycopg.connect(database, autocommit=True) as conn:
                    conn.execute(
                        "TRUNCATE binance_candle, binance_candle_1h, binance_candle_1d,"
                        " binance_ticker, symbol_data, relay_run CASCADE"
                    )
                spent.clear()
                started = time.perf_counter()
                stored = profile_ingest.relay_in(app, args.source)
                elapsed = time.perf_counter() - started
                print(
                    f"{stored:,} rows in {elapsed:.2f} s ({stored / elapsed:,.0f} rows/s): "
                    + ", ".join(f"{key} {value:.2f} s" for key, value in sorted(spent.items()))
                )
    finally:
        upstream.terminate()


if __name__ == "__main__":
    main()
