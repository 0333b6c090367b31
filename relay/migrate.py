"""Apply the numbered plain-SQL migrations in ``sql/`` once each, in order."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_NAME = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")
# Any constant works; it only has to be the same in every migrating process.
_LOCK_KEY = 0x72656C6179  # "relay"


def migration_files(sql_dir: Path = SQL_DIR) -> list[tuple[str, Path]]:
    """Return (version, path) for each migration, ordered by version."""
    found = []
    for path in sql_dir.glob("*.sql"):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file name not of the form NNN_name.sql: {path.name}")
        found.append((match.group(1), path))
    found.sort()
    versions = [version for version, _ in found]
    if len(versions) != len(set(versions)):
        raise ValueError("two migration files share a version number")
    return found


def migrate(conninfo: str, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations, each in its own transaction; return their names.

    A session advisory lock serializes concurrent runs (a release phase and a
    developer's shell, say), so running it twice at once is as safe as running
    it twice in a row: the second applies nothing.
    """
    applied = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migration (
                    version    text PRIMARY KEY,
                    name       text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migration")}
            for version, path in migration_files(sql_dir):
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(path.read_text())
                    conn.execute(
                        "INSERT INTO schema_migration (version, name) VALUES (%s, %s)",
                        (version, path.name),
                    )
                log.info("applied migration %s", path.name)
                applied.append(path.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied
