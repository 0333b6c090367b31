"""What a read costs in round trips, and that saving them keeps connections sound.

Reads run in autocommit (no BEGIN or COMMIT) unless they ask for one snapshot, and every
connection goes back to the pool as it came. The pool asks whether a connection is alive
only when it has been idle long enough to have died unseen; what the server saw last on
each connection (pg_stat_activity) shows whether the check was sent.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from psycopg.pq import TransactionStatus

from relay import db
from relay.reads import Reads


@pytest.fixture
def own_pool(database_url):
    """One connection, so each borrow lends the same one until the server ends it."""
    pool = db.make_pool(database_url, min_size=1, max_size=1, timeout=5, open=True)
    pool.wait()
    yield pool
    pool.close()


def last_query(database_url, pid: int) -> str | None:
    with psycopg.connect(database_url, autocommit=True) as watcher:
        query = "SELECT query FROM pg_stat_activity WHERE pid = %s"
        row = watcher.execute(query, (pid,)).fetchone()
    return None if row is None else row[0]


def test_a_read_runs_in_autocommit_and_the_connection_goes_back_as_it_came(own_pool):
    reads = Reads(own_pool)
    with reads.connection("coins") as conn:
        conn.execute("SELECT 1")
        assert conn.info.transaction_status == TransactionStatus.IDLE  # no BEGIN was sent
    with reads.connection("candles", snapshot=True) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute("SELECT 1")
        assert conn.info.transaction_status == TransactionStatus.INTRANS
    with own_pool.connection() as conn:  # a writer gets its transaction, as always
        assert not conn.autocommit
        conn.execute("SELECT 1")
        assert conn.info.transaction_status == TransactionStatus.INTRANS


def test_a_failed_read_gives_its_connection_back_out_of_autocommit(own_pool):
    reads = Reads(own_pool)
    with pytest.raises(psycopg.errors.DivisionByZero), reads.connection("coins") as conn:
        conn.execute("SELECT 1 / 0")
    with own_pool.connection() as conn:
        assert not conn.autocommit


def test_a_connection_back_within_the_window_is_lent_without_a_check(own_pool, database_url):
    with Reads(own_pool).connection("coins") as conn:  # autocommit: no COMMIT follows
        pid = conn.info.backend_pid
        conn.execute("SELECT 42")
    with own_pool.connection() as conn:
        assert conn.info.backend_pid == pid
        # Lent without a round trip: the server's last query on it is still the read's.
        assert last_query(database_url, pid) == "SELECT 42"
    time.sleep(db.CHECK_IDLE_AFTER_S + 0.1)
    with own_pool.connection() as conn:
        assert conn.info.backend_pid == pid
        assert last_query(database_url, pid) == ""  # the pool's liveness check, sent


def test_a_connection_ended_while_idle_is_replaced_before_it_is_lent(own_pool, database_url):
    with own_pool.connection() as conn:
        pid = conn.info.backend_pid
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(db.CHECK_IDLE_AFTER_S + 0.1)
    with own_pool.connection() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.info.backend_pid != pid
