"""The relay-in ledger: one lock per source and symbol, and a record of every run."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta

import psycopg
from psycopg_pool import ConnectionPool

from relay import db
from relay.changes import Changes
from relay.errors import Conflict, RelayError
from relay.ingest import RunResult
from relay.notify import wal_position
from relay.observe import Metrics

log = logging.getLogger(__name__)

START = """
    INSERT INTO relay_run (source, symbols, fired_by, started_at, status)
    VALUES (%(source)s, %(symbols)s, %(fired_by)s, %(now)s, %(status)s)
    RETURNING id
"""
FINISH = """
    UPDATE relay_run
    SET finished_at = %(now)s, status = %(status)s, http_status = %(http_status)s,
        processed = %(processed)s, complete = %(complete)s, error = %(error)s
    WHERE id = %(id)s
"""
LIST = """
    SELECT id, source, symbols, fired_by, started_at, finished_at, status, http_status,
           processed, complete, error
    FROM relay_run
    WHERE %(source)s::text IS NULL OR source = %(source)s
    ORDER BY started_at DESC, id DESC
    LIMIT %(limit)s
"""
LIST_COLUMNS = (
    "id", "source", "symbols", "fired_by", "started_at", "finished_at", "status",
    "http_status", "processed", "complete", "error",
)  # fmt: skip
LAST_SUCCESS = """
    SELECT s.source, r.finished_at
    FROM unnest(%(sources)s::text[]) AS s(source)
    LEFT JOIN LATERAL (
        SELECT finished_at FROM relay_run
        WHERE source = s.source AND status = 'succeeded'
          -- a run that ran out of time before storing anything refreshed nothing
          AND (complete OR processed > 0)
        ORDER BY finished_at DESC LIMIT 1
    ) AS r ON TRUE
"""
# Two keys: the source and the symbol, each hashed to an int4 by PostgreSQL. Every
# symbol's lock is tried in one statement; the first that another run holds is named.
# The caller releases whatever was taken.
TRY_LOCKS = """
    SELECT symbol FROM unnest(%(symbols)s::text[]) WITH ORDINALITY AS s (symbol, position)
    WHERE NOT pg_try_advisory_lock(hashtext(%(source)s), hashtext(symbol))
    ORDER BY position LIMIT 1
"""
# Advisory locks live in PostgreSQL's shared lock table (max_locks_per_transaction x
# max_connections: 6400 slots by default, for the whole server). A run of more symbols
# than this takes its source's lock instead, exclusively, so a whole-market run holds
# one lock, not thousands; every smaller run of the source shares that lock.
MAX_SYMBOL_LOCKS = 100
TRY_SOURCE_LOCK = "SELECT pg_try_advisory_lock(hashtext(%(source)s), hashtext('*'))"
TRY_SOURCE_SHARED = "SELECT pg_try_advisory_lock_shared(hashtext(%(source)s), hashtext('*'))"
UNLOCK_ALL = "SELECT pg_advisory_unlock_all()"
ALL_SYMBOLS = "*"
# A run in progress also holds a lock on its id (the one-bigint key, a key space apart
# from the two-int4 keys above), on the same connection: while its process lives, no one
# else can take it. Whoever can take it knows the run's process is gone.
HOLD_RUN = "SELECT pg_advisory_lock(%(id)s)"
RUNNING = "SELECT id FROM relay_run WHERE source = %(source)s AND status = 'running'"
TRY_RUN = "SELECT pg_try_advisory_lock(%(id)s)"
UNLOCK_RUN = "SELECT pg_advisory_unlock(%(id)s)"
ABANDON = """
    UPDATE relay_run SET status = 'abandoned', finished_at = %(now)s, error = %(error)s
    WHERE id = %(id)s AND status = 'running'
"""
ABANDONED = "its process stopped before the run ended (worker killed or database lost)"


class Ledger:
    """Run a relay-in under its locks, recording when, by whom, and how it ended."""

    def __init__(
        self,
        pool: ConnectionPool,
        now: Callable[[], datetime],
        changes: Changes | None = None,
        metrics: Metrics | None = None,
    ):
        self.pool = pool
        self.now = now
        self.changes = changes
        self.metrics = metrics

    @contextlib.contextmanager
    def _locked(self, source: str, symbols: Sequence[str]) -> Iterator[psycopg.Connection]:
        """Hold the run's advisory locks, or raise Conflict at once naming one that is held.

        A run of up to MAX_SYMBOL_LOCKS symbols locks each symbol (and shares the source's
        lock); a larger run, or one of a source without symbols, locks the whole source.

        The lock lives on a connection kept for the run (and yielded, for the run's own
        record): if the process dies, PostgreSQL drops the connection and the lock with it.
        """
        with db.connection(self.pool) as conn:
            conn.autocommit = True
            try:
                self._sweep(conn, source)
                whole = not symbols or len(symbols) > MAX_SYMBOL_LOCKS
                key = {"source": source}
                source_lock = TRY_SOURCE_LOCK if whole else TRY_SOURCE_SHARED
                held = None
                if not conn.execute(source_lock, key).fetchone()[0]:
                    held = (ALL_SYMBOLS,)
                elif not whole:
                    held = conn.execute(TRY_LOCKS, {**key, "symbols": list(symbols)}).fetchone()
                if held is not None:
                    raise Conflict(
                        "Conflict: Relay-in already running",
                        data={"source": source, "symbol": held[0]},
                    )
                yield conn
            finally:
                conn.execute(UNLOCK_ALL)
                conn.autocommit = False

    def _start(self, conn: psycopg.Connection, base: dict) -> int:
        """Record the run as running, holding its lock before anyone can see the row."""
        with conn.transaction():
            run_id = conn.execute(START, {"now": self.now(), **base, "status": "running"})
            run_id = run_id.fetchone()[0]
            conn.execute(HOLD_RUN, {"id": run_id})  # a session lock: it outlives the commit
        return run_id

    def _sweep(self, conn: psycopg.Connection, source: str) -> None:
        """Mark the source's runs whose process is gone (their lock is free) abandoned."""
        for (run_id,) in conn.execute(RUNNING, {"source": source}).fetchall():
            if not conn.execute(TRY_RUN, {"id": run_id}).fetchone()[0]:
                continue  # its process holds it: still running
            try:
                gone = conn.execute(ABANDON, {"id": run_id, "now": self.now(), "error": ABANDONED})
            finally:
                conn.execute(UNLOCK_RUN, {"id": run_id})
            if gone.rowcount:
                log.warning(
                    "relay-in %s run %s abandoned: %s", source, run_id, ABANDONED,
                    extra={"source": source, "outcome": "abandoned", "run_id": run_id},
                )  # fmt: skip
                if self.metrics is not None:
                    self.metrics.relay_in(source, "abandoned", 0)

    def _record(self, query: str, params: dict):
        with db.connection(self.pool) as conn:
            return conn.execute(query, {"now": self.now(), **params}).fetchone()

    def run(self, runner, symbols: Sequence[str], fired_by: str) -> RunResult:
        base = {"source": runner.name, "symbols": list(symbols), "fired_by": fired_by}
        try:
            with self._locked(runner.name, symbols) as conn:
                run_id = self._start(conn, base)
                # Its end is recorded while its locks are held, so it is never seen
                # running without them; then runs of the source that died are swept.
                try:
                    result = runner.run(symbols)
                except RelayError as exc:
                    processed = exc.data.get("processed")
                    self._end(conn, runner, run_id, base, "failed", exc.status, processed,
                              False, exc.message)  # fmt: skip
                    raise
                except Exception as exc:
                    self._end(conn, runner, run_id, base, "failed", 500, None, False,
                              type(exc).__name__)  # fmt: skip
                    raise
                self._end(conn, runner, run_id, base, "succeeded", result.http_status,
                          result.processed, result.complete, None)  # fmt: skip
        except Conflict as exc:
            run_id = self._record(START, {**base, "status": "rejected"})[0]
            with db.connection(self.pool) as conn:
                self._finish(conn, run_id, base, "rejected", exc.status, 0, False, exc.message)
            raise
        return result

    def _end(self, conn, runner, run_id, base, status, http_status, processed, complete, error):
        self._touch(conn, runner)
        self._finish(conn, run_id, base, status, http_status, processed, complete, error)
        self._sweep(conn, runner.name)

    def _touch(self, conn: psycopg.Connection, runner) -> None:
        # This worker answers from the new data at once (from a replica only once it has
        # replayed the run's writes, all committed by now); others hear it by NOTIFY.
        if self.changes is not None:
            self.changes.touch(runner.concern, wal_position(conn))

    def _finish(self, conn, run_id, base, status, http_status, processed, complete, error):
        """Record how a run ended, and say so in one log line and the metrics."""
        conn.execute(
            FINISH,
            {
                "id": run_id, "now": self.now(), "status": status,
                "http_status": http_status, "processed": processed,
                "complete": complete, "error": error,
            },
        )  # fmt: skip
        log.log(
            logging.WARNING if status == "failed" else logging.INFO,
            "relay-in %s %s: %s",
            base["source"],
            status,
            error or f"{processed} new rows",
            extra={
                "source": base["source"], "symbols": base["symbols"], "sub": base["fired_by"],
                "outcome": status, "status": http_status, "processed": processed,
                "complete": complete, "error": error,
            },
        )  # fmt: skip
        if self.metrics is not None:
            self.metrics.relay_in(base["source"], status, processed or 0)

    def recent(self, source: str | None, limit: int) -> list[dict]:
        with db.connection(self.pool) as conn:
            rows = conn.execute(LIST, {"source": source, "limit": limit}).fetchall()
        return [dict(zip(LIST_COLUMNS, row, strict=True)) for row in rows]

    def freshness(self, overdue_after: dict[str, timedelta]) -> dict[str, dict]:
        """Per source: the last successful run's end, and whether the next is overdue."""
        with db.connection(self.pool) as conn:
            rows = conn.execute(LAST_SUCCESS, {"sources": list(overdue_after)}).fetchall()
        now = self.now()
        return {
            source: {
                "last_success": last,
                "overdue": last is None or now - last > overdue_after[source],
            }
            for source, last in rows
        }
