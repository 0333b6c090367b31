"""Where relay-out reads go: a replica when it is as fresh as the worker knows, else the primary.

With ``DATABASE_REPLICA_URL`` (a Heroku follower) relay-out answers are read from the
replica; writes, advisory locks, run records, revocations and LISTEN stay on the primary.
A worker knows of a change when its listener hears the NOTIFY, or when it made the change
itself; with each it keeps a position in the primary's WAL past the change
(relay.changes). A read of a concern goes to the replica only when the replica has
replayed up to that concern's position, so no answer is older than a change the worker was
told of; otherwise it goes to the primary. While the listener is not trusted, every read
goes to the primary.

What the replica has replayed is asked as each connection leaves the pool, in place of the
pool's usual liveness check, so knowing it costs no extra round trip. An unreachable
replica (or one that is not a standby) sends every read to the primary, logged once; a
background probe brings it back.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections.abc import Iterator

import psycopg
from psycopg_pool import ConnectionPool

from relay import db
from relay.changes import Changes
from relay.errors import DatabaseUnavailable
from relay.notify import wal_position

log = logging.getLogger(__name__)

# NULL on a server that is not in recovery (not a standby, or promoted).
REPLAYED = "SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn"

# What each replica connection reported as the pool lent it, until the borrower takes it.
_replayed: weakref.WeakKeyDictionary[psycopg.Connection, int | None] = weakref.WeakKeyDictionary()
_replayed_lock = threading.Lock()
_UNASKED = object()


def replayed(conn: psycopg.Connection) -> int | None:
    """Ask a replica how far it has replayed the primary's WAL (None: not a standby)."""
    conn.autocommit = True  # no transaction left open: the pool lends it idle
    try:
        value = conn.execute(REPLAYED).fetchone()[0]
    finally:
        with contextlib.suppress(Exception):
            conn.autocommit = False
    position = None if value is None else int(value)
    with _replayed_lock:
        _replayed[conn] = position
    return position


def make_replica_pool(conninfo: str, **kwargs) -> ConnectionPool:
    """A pool on the replica (db.make_pool's arguments) that checks each connection it
    lends by asking how far it has replayed: a dead one is replaced, as by the usual check.
    """
    return db.make_pool(
        conninfo, name="relay-replica", application_name="relay-replica", check=replayed,
        **kwargs,
    )  # fmt: skip


class Reads:
    """Lend connections to read a concern from: the replica when fresh enough, else the primary.

    Without a replica (or a listener) every read goes to the primary.
    """

    def __init__(
        self,
        primary: ConnectionPool,
        replica: ConnectionPool | None = None,
        changes: Changes | None = None,
        *,
        retry_s: float = 5.0,
    ):
        self._primary = primary
        self._replica = replica
        self._changes = changes
        self.retry_s = retry_s
        self._lock = threading.Lock()
        self._unavailable: str | None = None  # why the replica is not used now; None: it is
        self._stop = threading.Event()
        self._probe: threading.Thread | None = None

    @contextlib.contextmanager
    def connection(self, concern: str, *, snapshot: bool = False) -> Iterator[psycopg.Connection]:
        """One unit of reading ``concern``, as db.connection: psycopg errors become 503.

        Each statement reads its own snapshot, in autocommit (as READ COMMITTED would give,
        without the BEGIN and COMMIT round trips); ``snapshot``: one transaction, whose
        isolation the reader may set first.
        """
        conn = self._fresh_replica(concern)
        if conn is None:
            with db.connection(self._primary, autocommit=not snapshot) as conn:
                yield conn
            return
        try:
            # commit or roll back; a pooled connection is not closed
            with conn, db.autocommitting(conn, not snapshot):
                yield conn
        except psycopg.OperationalError as exc:
            self._lose(type(exc).__name__)
            raise DatabaseUnavailable() from exc
        except psycopg.errors.SerializationFailure as exc:
            # A hot standby cancels a query that conflicts with what it replays: try later.
            raise DatabaseUnavailable() from exc
        finally:
            self._replica.putconn(conn)

    def _fresh_replica(self, concern: str) -> psycopg.Connection | None:
        """A replica connection that has replayed every change of ``concern`` known here."""
        if self._replica is None or self._changes is None or self._unavailable is not None:
            return None
        needed = self._changes.wal_position(concern)
        if needed is None:
            return None
        try:
            conn = self._replica.getconn()
        except psycopg.OperationalError as exc:  # PoolTimeout: none could be had in time
            self._lose(type(exc).__name__)
            return None
        try:
            with _replayed_lock:
                position = _replayed.pop(conn, _UNASKED)
            if position is _UNASKED:  # a pool not made by make_replica_pool
                position = replayed(conn)
        except psycopg.OperationalError as exc:
            self._replica.putconn(conn)
            self._lose(type(exc).__name__)
            return None
        if position is not None and position >= needed:
            return conn
        self._replica.putconn(conn)
        if position is None:
            self._lose("not a standby")
        return None

    # -- the replica's availability -------------------------------------------------------

    def _lose(self, why: str) -> None:
        with self._lock:
            if self._unavailable is not None or self._stop.is_set():
                return
            self._unavailable = why
            self._probe = threading.Thread(target=self._wait_back, name="relay-replica-probe")
            self._probe.daemon = True
            self._probe.start()
        log.warning("read replica unavailable (%s): reading the primary until it is back", why)

    def _wait_back(self) -> None:
        while not self._stop.wait(self.retry_s):
            if self._ask() is not None:
                with self._lock:
                    self._unavailable = None
                log.info("read replica is back: reading from it again")
                return

    def _ask(self) -> int | None:
        """How far the replica has replayed; None when it cannot say."""
        try:
            conn = self._replica.getconn()
        except psycopg.OperationalError:
            return None
        try:
            return replayed(conn)
        except psycopg.Error:
            return None
        finally:
            self._replica.putconn(conn)

    def health(self) -> dict | None:
        """The replica for /health: None without one; else its status, and when it answers,
        how many bytes of the primary's WAL it has yet to replay."""
        if self._replica is None:
            return None
        position = self._ask() if self._unavailable is None else None
        if position is None:
            self._lose("no answer")
            return {"status": "unavailable", "reason": self._unavailable}
        with db.connection(self._primary) as conn:
            lag = max(0, wal_position(conn) - position)
        return {"status": "ok", "lag_bytes": lag}

    def stop(self) -> None:
        """Stop probing for the replica (tests; a worker just exits)."""
        self._stop.set()
        if self._probe is not None:
            self._probe.join(5)
