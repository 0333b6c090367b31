"""Say, inside a write, that stored data changed: every worker's listener hears it at commit.

And where in the primary's WAL a change ends, so that a read replica can be asked
whether it has replayed it (relay.reads).
"""

from __future__ import annotations

import psycopg

CHANNEL = "relay_changes"
NOTIFY = "SELECT pg_notify('relay_changes', %(concern)s)"
REVOKED = "revoked"
# The insert position is past every record already inserted, a commit's included (also
# under synchronous_commit = off, where the flushed position could still be before it).
# As a number of bytes, so positions compare as ints.
WAL_POSITION = "SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn"


def announce(conn: psycopg.Connection, concern: str) -> None:
    """Tell every worker, at commit, that ``concern`` changed (call inside the write)."""
    conn.execute(NOTIFY, {"concern": concern})


def wal_position(conn: psycopg.Connection) -> int:
    """The primary's WAL position now: past every commit this session has seen or heard of."""
    return int(conn.execute(WAL_POSITION).fetchone()[0])
