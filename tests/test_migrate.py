"""Migrations: applied once each, in order, from sql/ to the schema the code expects."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import sql

from relay.migrate import SQL_DIR, migrate, migration_files


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
