"""Years of history: candles at every interval, from rollups and from the minutes alone.

    ./run python -m bench.history [--years 2] [--calls 50]

Fills ``--years`` of 1-minute candles for one symbol (one minute in five untraded),
rolls them up, then measures, for 500 buckets ending at the newest minute:

* ``rollup``: the candles query as served (relay.rollups.read, from the coarsest
  stored level that divides the interval), uncached;
* ``minutes``: the same candles aggregated from the 1-minute rows (the query before
  rollups), uncached;
* ``cached``: the candles route through the whole app once its answer is cached.

It also reports bytes per stored row (table plus indexes) of the minutes and each
rollup, and how long rolling up the whole history took. All on loopback, in-process.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

import psycopg
import webtest

from bench import harness
from relay import db, markets, rollups
from relay.app import create_app
from relay.changes import Changes
from relay.config import Config
from relay.reads import Reads
from relay.sources.binance import MARKET

SYMBOL = "HISTUSDT"
INTERVALS = ("1m", "1h", "4h", "1d")
FILL = """
    INSERT INTO binance_candle
    SELECT %(symbol)s, t, t + interval '59.999 seconds',
           CASE WHEN traded THEN p ELSE c END, CASE WHEN traded THEN p + 0.01 ELSE c END,
           CASE WHEN traded THEN p - 0.01 ELSE c END, c,
           CASE WHEN traded THEN 12.5 ELSE 0 END, 0, 0, 0, 0, t
    FROM generate_series(%(first)s::timestamptz, %(last)s::timestamptz, interval '1 minute')
         AS t,
         LATERAL (SELECT extract(epoch FROM t)::bigint / 60 %% 5 <> 0 AS traded,
                         100 + (extract(epoch FROM t)::bigint %% 997)::numeric / 100 AS p,
                         100 + (extract(epoch FROM t)::bigint %% 991)::numeric / 100 AS c) AS x
"""
SIZE = """
    SELECT pg_total_relation_size(%(table)s::regclass),
           (SELECT count(*) FROM {table})
"""


def p50_ms(call, calls: int) -> float:
    call()  # warm
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(url: str, years: float = 2, calls: int = 30) -> dict:
    """Fill ``years`` of minutes into the database at ``url`` and time candles reads."""
    last = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)
    first = last - timedelta(days=round(365 * years))
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute(FILL, {"symbol": SYMBOL, "first": first, "last": last})
        filled = time.perf_counter() - started
        started = time.perf_counter()
        rollups.rebuild(conn, MARKET, SYMBOL)
        rolled = time.perf_counter() - started
        conn.execute("VACUUM ANALYZE")
        sizes = {}
        for level in ("1d", "1h", None):
            table = rollups.table(MARKET, level)
            total, rows = conn.execute(
                psycopg.sql.SQL(SIZE).format(table=psycopg.sql.Identifier(table)),
                {"table": table},
            ).fetchone()
            sizes[table] = {"rows": rows, "bytes": total}
    pool = db.make_pool(url, open=True)
    changes = Changes(url).start()  # answers are cached until the candles change
    config = Config(database_url=url, jwt_secrets=(harness.SECRET,))
    app = webtest.TestApp(create_app(config, pool, changes=changes))
    headers = {"Authorization": f"Bearer {harness.token('relay:out')}"}
    end = last + timedelta(minutes=1)
    intervals = {}
    try:
        for name in INTERVALS:
            every = markets.INTERVALS[name]
            start = every.floor(every.back(end, 500))

            def served(name=name):
                return markets.resample(Reads(pool), MARKET, SYMBOL, name, None, None)

            def from_minutes(start=start, every=every):
                with db.connection(pool) as conn:
                    return conn.execute(
                        rollups.statements(MARKET).read[None, "bin"],
                        {"symbol": SYMBOL, "width": every.width, "origin": every.origin,
                         "start": start, "cut": start, "end": end},
                    ).fetchall()  # fmt: skip

            def cached(name=name):
                return app.get(
                    "/relay-api/v1/relay-out/candles",
                    {"symbol": SYMBOL, "interval": name},
                    headers=headers,
                )

            candles = served()["candles"]
            assert [tuple(r) for r in from_minutes()] == [
                (c["time"], c["open"], c["high"], c["low"], c["close"], c["volume"])
                for c in candles
            ], name
            intervals[name] = {
                "candles": len(candles),
                "rollup_p50_ms": p50_ms(served, calls),
                "minutes_p50_ms": p50_ms(from_minutes, calls),
                "cached_route_p50_ms": p50_ms(cached, calls),
            }
    finally:
        changes.stop()
        pool.close()
    return {"years": years, "fill_s": filled, "rollup_s": rolled, "sizes": sizes,
            "intervals": intervals}  # fmt: skip


def table(result: dict) -> str:
    minutes = result["sizes"][MARKET.candles]["rows"]
    lines = [
        f"history: {minutes:,} one-minute rows of {SYMBOL} ({result['years']:g} years), "
        f"filled in {result['fill_s']:.1f} s, rolled up in {result['rollup_s']:.1f} s",
        "",
        "| interval | candles | rollup p50 ms | minutes p50 ms | cached route p50 ms |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, f in result["intervals"].items():
        lines.append(
            f"| {name} | {f['candles']} | {f['rollup_p50_ms']:.2f} | {f['minutes_p50_ms']:.2f} "
            f"| {f['cached_route_p50_ms']:.2f} |"
        )
    lines += ["", "| table | rows | bytes (table + indexes) | bytes per row |",
              "| --- | --- | --- | --- |"]  # fmt: skip
    for name, size in result["sizes"].items():
        per_row = size["bytes"] / max(size["rows"], 1)
        lines.append(f"| {name} | {size['rows']:,} | {size['bytes']:,} | {per_row:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--years", type=float, default=2)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    with harness.postgres() as server_url:
        print(table(measure(harness.fresh_database(server_url), args.years, args.calls)))


if __name__ == "__main__":
    main()
