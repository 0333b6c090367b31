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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", choices=["coinapi", "binance"], default="coinapi")
    parser.add_argument("--rows", type=int, default=None, help="200,000 trades or 100,000 klines")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    now = datetime.now(UTC)
    pages = harness.PageServer()
    if args.source == "coinapi":
        pages.add_trades(BTC, now - timedelta(hours=6), args.rows or 200_000)
        query = {"Symbol": BTC}
    else:
        minutes = args.rows or 100_000
        pages.add_klines("ADAUSDT", now - timedelta(minutes=minutes), minutes)
        query = {"Symbol": "ADAUSDT", "source": "binance"}
    with harness.postgres() as server_url:
        url = harness.fresh_database(server_url)
        pool = db.make_pool(url, open=True)
        config = Config(database_url=url, jwt_secrets=(harness.SECRET,)).replace(
            coinapi_url=pages.url,
            coinapi_page_limit=10_000,
            coinapi_backfill_hours=7,
            binance_url=pages.url,
            binance_backfill_hours=(args.rows or 100_000) // 60 + 2,
            relay_in_budget_s=600,
        )
        app = webtest.TestApp(create_app(config, pool))
        headers = {"Authorization": f"Bearer {harness.token('relay:in')}"}
        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        resp = app.get("/relay-api/v1/relay-in", query, headers=headers)
        profile.disable()
        elapsed = time.perf_counter() - started
        processed = resp.json["data"]["processed"]
        print(f"{processed:,} rows in {elapsed:.2f} s: {processed / elapsed:,.0f} rows/s")
        pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
        pool.close()
    pages.close()


if __name__ == "__main__":
    main()
