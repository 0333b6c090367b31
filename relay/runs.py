"""The relay-in ledger: one lock per source and symbol, and a record of every run."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta

from psycopg_pool import ConnectionPool

from relay import db
from relay.changes import Changes
from relay.errors import Conflict, RelayError
from relay.ingest import RunResult
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
        ORDER BY finished_at DESC LIMIT 1
    ) AS r ON TRUE
"""
# Two keys: the source and the symbol, each hashed to an int4 by PostgreSQL.
TRY_LOCK = "SELECT pg_try_advisory_lock(hashtext(%(source)s), hashtext(%(symbol)s))"
UNLOCK_ALL = "SELECT pg_advisory_unlock_all()"
ALL_SYMBOLS = "*"


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
    def _locked(self, source: str, symbols: Sequence[str]) -> Iterator[None]:
        """Hold a session advisory lock per symbol for the run, or raise Conflict at once.

        The lock lives on a connection kept for the run: if the process dies,
        PostgreSQL drops the connection and the lock with it.
        """
        with db.connection(self.pool) as conn:
            conn.autocommit = True
            try:
                for symbol in symbols or [ALL_SYMBOLS]:
                    row = conn.execute(TRY_LOCK, {"source": source, "symbol": symbol}).fetchone()
                    if not row[0]:
                        raise Conflict(
                            "Conflict: Relay-in already running",
                            data={"source": source, "symbol": symbol},
                        )
                yield
            finally:
                conn.execute(UNLOCK_ALL)
                conn.autocommit = False

    def _record(self, query: str, params: dict):
        with db.connection(self.pool) as conn:
            return conn.execute(query, {"now": self.now(), **params}).fetchone()

    def run(self, runner, symbols: Sequence[str], fired_by: str) -> RunResult:
        base = {"source": runner.name, "symbols": list(symbols), "fired_by": fired_by}
        try:
            with self._locked(runner.name, symbols):
                run_id = self._record(START, {**base, "status": "running"})[0]
                try:
                    result = runner.run(symbols)
                except RelayError as exc:
                    self._touch(runner)
                    processed = exc.data.get("processed")
                    self._finish(run_id, base, "failed", exc.status, processed, False, exc.message)
                    raise
                except Exception as exc:
                    self._touch(runner)
                    self._finish(run_id, base, "failed", 500, None, False, type(exc).__name__)
                    raise
                self._touch(runner)
        except Conflict as exc:
            run_id = self._record(START, {**base, "status": "rejected"})[0]
            self._finish(run_id, base, "rejected", exc.status, 0, False, exc.message)
            raise
        self._finish(
            run_id, base, "succeeded", result.http_status, result.processed, result.complete, None
        )
        return result

    def _touch(self, runner) -> None:
        # This worker answers from the new data at once; others hear it by NOTIFY.
        if self.changes is not None:
            self.changes.touch(runner.concern)

    def _finish(self, run_id, base, status, http_status, processed, complete, error) -> None:
        """Record how a run ended, and say so in one log line and the metrics."""
        with db.connection(self.pool) as conn:
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
