"""Where a relay-in spends its time: cProfile of one run, in-process.

    ./run python -m bench.profile_ingest [--source coinapi|binance] [--rows N] [--top 25]

Serves pre-rendered CoinAPI trades (10,000 a page) or Binance klines (1,000
a page, Binance's maximum) from a loopback upstream, runs one relay-in
through the whole app (WebTest, real PostgreSQL) under cProfile, and prints
rows/s and the functions by cumulative time. The profile covers the
request thread; the page fetched ahead runs on a helper thread.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from datetime import UTC, datetime, timedelta

import webtest

from bench import harness
from relay import db
from relay.app import create_app
from relay.config import Config

BTC = "BITSTAMP_SPOT_BTC_USD"
ROWS = {"coinapi": 200_000, "binance": 100_000}  # by default: a CoinAPI or Binance run
QUERY = {"coinapi": {"Symbol": BTC}, "binance": {"Symbol": "ADAUSDT", "source": "binance"}}


def add_rows(pages: harness.PageServer, source: str, rows: int) -> None:
    """Put ``rows`` trades (CoinAPI) or klines (Binance) up to now on the loopback upstream:
    trades over the last 6 hours, 10,000 a page; klines one a minute, 1,000 a page."""
    now = datetime.now(UTC)
    if source == "coinapi":
        pages.add_trades(BTC, now - timedelta(hours=6), rows)
    else:
        pages.add_klines("ADAUSDT", now - timedelta(minutes=rows), rows)


def relay_in_app(database: str, upstream: str, rows: int) -> webtest.TestApp:
    """The whole app on ``database``, its CoinAPI and Binance at ``upstream``, reaching
    back far enough for ``rows`` and with time to take them all in one call."""
    pool = db.make_pool(database, open=True)
    config = Config(database_url=database, jwt_secrets=(harness.SECRET,)).replace(
        coinapi_url=upstream, coinapi_page_limit=10_000, coinapi_backfill_hours=7,
        binance_url=upstream, binance_backfill_hours=rows // 60 + 2, relay_in_budget_s=600,
    )  # fmt: skip
    return webtest.TestApp(create_app(config, pool))


def relay_in(app: webtest.TestApp, source: str) -> int:
    """One relay-in of ``source`` through the app; the rows it stored."""
    headers = {"Authorization": f"Bearer {harness.token('relay:in')}"}
    resp = app.get("/relay-api/v1/relay-in", QUERY[source], headers=headers)
    return resp.json["data"]["processed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", choices=["coinapi", "binance"], default="coinapi")
    parser.add_argument("--rows", type=int, default=None, help="200,000 trades or 100,000 klines")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    rows = args.rows or ROWS[args.source]
    pages = harness.PageServer()
    add_rows(pages, args.source, rows)
    with harness.postgres() as server_url:
        app = relay_in_app(harness.fresh_database(server_url), pages.url, rows)
        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        processed = relay_in(app, args.source)
        profile.disable()
        elapsed = time.perf_counter() - started
        print(f"{processed:,} rows in {elapsed:.2f} s: {processed / elapsed:,.0f} rows/s")
        pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
    pages.close()


if __name__ == "__main__":
    main()
