"""How long the migrations that change the candle tables take on a big table.

    ./run python -m bench.migrations [--rows 10000000]

Migrates a fresh database up to the migration before the rollups, fills
``binance_candle`` with ``--rows`` one-minute rows and ``symbol_data`` with ``--rows``
trades (ten symbols each), then applies the rest one at a time, timing each, and
checks that every row is still there. Bytes per trade are shown before and after.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from bench import harness
from relay import partitions
from relay.migrate import migrate, migration_files

FIRST_TIMED = "009"
SYMBOLS = """
    INSERT INTO symbol (symbol_id) SELECT 'BITSTAMP_SPOT_S' || s || '_USD'
    FROM generate_series(1, 10) AS s
"""
TRADES = """
    INSERT INTO symbol_data (uuid, symbol, time_exchange, time_coinapi, price, size, taker_side)
    SELECT gen_random_uuid(), 1 + i %% 10, t, t, 30000 + i %% 997 + 0.12345678,
           0.001 * (i %% 1000), 'BUY'
    FROM generate_series(1, %(rows)s) AS i,
         LATERAL (SELECT timestamptz '2024-01-01' + i * interval '100 milliseconds' AS t) AS x
"""
TRADE_BYTES = "SELECT pg_total_relation_size('symbol_data')::float / count(*) FROM symbol_data"
FILL = """
    INSERT INTO binance_candle
    SELECT 'S' || s || 'USDT', t, t + interval '59.999 seconds', p, p + 1, p - 1, p,
           CASE WHEN m %% 5 = 0 THEN 0 ELSE 10 END, 10 * p, 7, 5, 5 * p, t
    FROM generate_series(1, 10) AS s,
         generate_series(1, %(per_symbol)s) AS m,
         LATERAL (SELECT timestamptz '2024-01-01' + m * interval '1 minute' AS t,
                         (40000 + m %% 997)::numeric / 100 AS p) AS x
"""


def measure(server_url: str, rows: int = 10_000_000) -> str:
    """Fill, migrate and prune a database of its own on the server; return the report."""
    report = []

    def say(line: str) -> None:
        print(line, flush=True)
        report.append(line)

    files = migration_files()
    with tempfile.TemporaryDirectory() as tmp:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS relay_migrations WITH (FORCE)")
            conn.execute("CREATE DATABASE relay_migrations")
        url = psycopg.conninfo.make_conninfo(server_url, dbname="relay_migrations")
        folder = Path(tmp)
        for version, path in files:
            if version < FIRST_TIMED:
                shutil.copy(path, folder / path.name)
        migrate(url, folder)
        with psycopg.connect(url, autocommit=True) as conn:
            started = time.perf_counter()
            conn.execute(FILL, {"per_symbol": rows // 10})
            conn.execute(SYMBOLS)
            conn.execute(TRADES, {"rows": rows})
            conn.execute("VACUUM ANALYZE")
            say(f"filled {rows:,} candles and trades in {time.perf_counter() - started:.1f} s")
            say(f"bytes per trade before: {conn.execute(TRADE_BYTES).fetchone()[0]:.0f}")
        for version, path in files:
            if version >= FIRST_TIMED:
                shutil.copy(path, folder / path.name)
                started = time.perf_counter()
                migrate(url, folder)
                say(f"{path.name}: {time.perf_counter() - started:.1f} s")
        with psycopg.connect(url) as conn:
            held = conn.execute("SELECT count(*) FROM binance_candle").fetchone()[0]
            hours = conn.execute("SELECT count(*) FROM binance_candle_1h").fetchone()[0]
            trades = conn.execute("SELECT count(*) FROM symbol_data").fetchone()[0]
            per_trade = conn.execute(
                "SELECT sum(pg_total_relation_size(inhrelid))::float / %s FROM pg_inherits"
                " WHERE inhparent = 'symbol_data'::regclass",
                (trades,),
            ).fetchone()[0]
        assert held == rows // 10 * 10, held
        assert trades == rows, trades
        say(f"binance_candle still holds {held:,} rows; {hours:,} hourly rollup rows")
        say(f"symbol_data still holds {trades:,} trades; bytes per trade after: {per_trade:.0f}")
        # Retention's cost: dropping the month that holds all of them.
        later = datetime.now(UTC) + timedelta(days=400)
        with psycopg.connect(url) as conn:
            for table in ("binance_candle", "symbol_data"):
                started = time.perf_counter()
                dropped = partitions.prune(conn, table, timedelta(days=1), later)
                conn.commit()
                took = time.perf_counter() - started
                say(f"retention dropped {dropped} ({rows:,} rows) in {took * 1000:.0f} ms")
    return "\n".join(report) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    args = parser.parse_args()
    with harness.postgres() as server_url:
        measure(server_url, args.rows)


if __name__ == "__main__":
    main()
