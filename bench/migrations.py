"""How long the migrations that change the candle tables take on a big table.

    ./run python -m bench.migrations [--rows 10000000]

Migrates a fresh database up to the migration before the rollups, fills
``binance_candle`` with ``--rows`` one-minute rows (ten symbols), then applies the
rest one at a time, timing each, and checks that every row is still there.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import psycopg

from bench import harness
from relay.migrate import migrate, migration_files

FIRST_TIMED = "009"
FILL = """
    INSERT INTO binance_candle
    SELECT 'S' || s || 'USDT', t, t + interval '59.999 seconds', p, p + 1, p - 1, p,
           CASE WHEN m %% 5 = 0 THEN 0 ELSE 10 END, 10 * p, 7, 5, 5 * p, t
    FROM generate_series(1, 10) AS s,
         generate_series(1, %(per_symbol)s) AS m,
         LATERAL (SELECT timestamptz '2024-01-01' + m * interval '1 minute' AS t,
                         (40000 + m %% 997)::numeric / 100 AS p) AS x
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    args = parser.parse_args()
    files = migration_files()
    with harness.postgres() as server_url, tempfile.TemporaryDirectory() as tmp:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE relay_migrations")
        url = psycopg.conninfo.make_conninfo(server_url, dbname="relay_migrations")
        folder = Path(tmp)
        for version, path in files:
            if version < FIRST_TIMED:
                shutil.copy(path, folder / path.name)
        migrate(url, folder)
        with psycopg.connect(url, autocommit=True) as conn:
            started = time.perf_counter()
            conn.execute(FILL, {"per_symbol": args.rows // 10})
            conn.execute("VACUUM ANALYZE binance_candle")
            print(f"filled {args.rows:,} rows in {time.perf_counter() - started:.1f} s")
        for version, path in files:
            if version >= FIRST_TIMED:
                shutil.copy(path, folder / path.name)
                started = time.perf_counter()
                migrate(url, folder)
                print(f"{path.name}: {time.perf_counter() - started:.1f} s", flush=True)
        with psycopg.connect(url) as conn:
            held = conn.execute("SELECT count(*) FROM binance_candle").fetchone()[0]
            hours = conn.execute("SELECT count(*) FROM binance_candle_1h").fetchone()[0]
        assert held == args.rows // 10 * 10, held
        print(f"binance_candle still holds {held:,} rows; {hours:,} hourly rollup rows")


if __name__ == "__main__":
    main()
