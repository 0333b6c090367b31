"""Migrations: applied once each, in order, from sql/ to the schema the code expects."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import sql

from relay import rollups
from relay.migrate import SQL_DIR, migrate, migration_files
from relay.sources.binance import MARKET
from tests.conftest import fresh_database


@pytest.fixture
def blank_url(server_url):
    name = f"relay_migrate_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield psycopg.conninfo.make_conninfo(server_url, dbname=name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def columns(url, table):
    with psycopg.connect(url) as conn:
        return dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = %s",
                (table,),
            ).fetchall()
        )


def test_from_scratch_gives_the_expected_schema_and_a_rerun_is_a_no_op(blank_url):
    files = [path.name for _, path in migration_files()]
    assert migrate(blank_url) == files
    assert migrate(blank_url) == []
    with psycopg.connect(blank_url) as conn:
        recorded = [r[0] for r in conn.execute("SELECT name FROM schema_migration ORDER BY 1")]
    assert recorded == files
    assert columns(blank_url, "symbol_data") == {
        "uuid": "uuid",
        "symbol": "bigint",
        "time_exchange": "timestamp with time zone",
        "time_coinapi": "timestamp with time zone",
        "price": "numeric",
        "size": "numeric",
        "taker_side": "text",
    }


def test_a_failing_migration_is_rolled_back_whole(blank_url, tmp_path):
    for _, path in migration_files():
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "999_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\nSELECT no_such_function();\n"
    )
    with pytest.raises(psycopg.Error):
        migrate(blank_url, tmp_path)
    with psycopg.connect(blank_url) as conn:
        assert conn.execute("SELECT to_regclass('half_done')").fetchone()[0] is None
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migration")]
    assert "999" not in versions and len(versions) == len(migration_files())


def test_file_names_must_be_numbered(tmp_path):
    (tmp_path / "init.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match=r"NNN_name\.sql"):
        migration_files(tmp_path)
    assert SQL_DIR.is_dir()


def test_the_rollup_migration_rolls_up_the_minutes_already_held(server_url):
    with fresh_database(server_url, "relay_migrate", before="009") as url:
        rolled_up_as_the_ingest_would(url)


def rolled_up_as_the_ingest_would(blank_url: str) -> None:
    with psycopg.connect(blank_url) as conn:
        # 3 days of minutes, every fifth untraded at the carried close, a gap of an hour
        conn.execute(
            """
            INSERT INTO binance_candle
            SELECT 'OLDUSDT', t, t + interval '59.999 s',
                   CASE WHEN traded THEN p ELSE c END, CASE WHEN traded THEN p + 1 ELSE c END,
                   CASE WHEN traded THEN p - 1 ELSE c END, c,
                   CASE WHEN traded THEN 2.5 ELSE 0 END, 0, 0, 0, 0, t
            FROM generate_series(timestamptz '2026-01-01', timestamptz '2026-01-03 23:59',
                                 interval '1 minute') AS t,
                 LATERAL (SELECT extract(epoch FROM t)::bigint / 60 % 5 <> 0 AS traded,
                                 (extract(epoch FROM t)::bigint % 997)::numeric / 7 AS p,
                                 (extract(epoch FROM t)::bigint % 991)::numeric / 3 AS c) AS x
            WHERE t NOT BETWEEN '2026-01-02 05:00' AND '2026-01-02 05:59'
            """
        )
    migrate(blank_url)
    with psycopg.connect(blank_url) as conn:
        held = {
            level: conn.execute(
                sql.SQL("SELECT * FROM {} ORDER BY bucket").format(
                    sql.Identifier(f"binance_candle_{level}")
                )
            ).fetchall()
            for level in ("1h", "1d")
        }
        conn.execute("TRUNCATE binance_candle_1h, binance_candle_1d")
        rollups.rebuild(conn, MARKET, "OLDUSDT")  # what the ingest's own refresh gives
        for level, rows in held.items():
            again = conn.execute(
                sql.SQL("SELECT * FROM {} ORDER BY bucket").format(
                    sql.Identifier(f"binance_candle_{level}")
                )
            ).fetchall()
            assert rows == again, level
    assert len(held["1h"]) == 71 and len(held["1d"]) == 3


def test_revocations_held_take_the_expiry_of_their_recorded_tokens(server_url):
    with fresh_database(server_url, "relay_migrate", before="015") as url:
        with psycopg.connect(url) as conn:
            conn.execute(
                "INSERT INTO issued_token VALUES ('known', 'laptop', 'relay:out',"
                " '2026-01-01T00:00Z', '2026-01-31T00:00Z')"
            )
            conn.execute("INSERT INTO revoked_token (jti) VALUES ('known'), ('unrecorded')")
        assert migrate(url) == [path.name for _, path in migration_files() if path.name >= "015"]
        with psycopg.connect(url) as conn:
            held = dict(conn.execute("SELECT jti, expires_at FROM revoked_token"))
    assert held == {"known": datetime(2026, 1, 31, tzinfo=UTC), "unrecorded": None}


def test_migrate_with_the_database_unreachable_says_so_without_a_traceback():
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "DATABASE_URL": "postgresql://relay:s3cret-pw@127.0.0.1:9/relay"}
    done = subprocess.run(
        [sys.executable, "-m", "relay", "migrate"], cwd=Path(__file__).resolve().parent.parent,
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "relay migrate: the database is unreachable" in done.stderr
    assert "Traceback" not in done.stderr and "s3cret-pw" not in done.stderr
