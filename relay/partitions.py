"""Raw rows in monthly partitions: new months made as the ingest reaches them, old months
dropped whole when retention says so.

A partitioned table ``{table}`` has a partition per UTC month, ``{table}_pYYYYMM``, and
(from the migration that partitioned it) ``{table}_p_before`` holding everything before
the first of those. Retention drops every partition whose months all lie before the
cutoff (a whole month at a time: a row lives up to one month past its retention), then
records in ``retention`` where the table's rows now begin, so reads of what was removed
can say so. Dropping a partition costs the same whatever it held.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from relay import db
from relay.errors import UpstreamError

log = logging.getLogger(__name__)

BOUNDS = """
    SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
    FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
    WHERE i.inhparent = %(table)s::regclass
"""
_BOUND = re.compile(r"FROM \((MINVALUE|'[^']*')\) TO \((MAXVALUE|'[^']*')\)")
HELD_FROM = "SELECT held_from FROM retention WHERE relation = %(table)s"
RECORD_HELD_FROM = """
    INSERT INTO retention (relation, held_from) VALUES (%(table)s, %(held_from)s)
    ON CONFLICT (relation) DO UPDATE SET held_from = greatest(retention.held_from,
                                                              excluded.held_from)
"""
# One maker of partitions per table at a time, across processes.
LOCK = "SELECT pg_advisory_xact_lock(hashtext('partitions'), hashtext(%(table)s))"
MAX_MONTHS = 1200  # months() walks at most a century
MAX_PAGE_MONTHS = 3  # a page of minutes or trades touches a month or two, never more


def month_start(when: datetime) -> datetime:
    when = when.astimezone(UTC)
    return datetime(when.year, when.month, 1, tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def months(first: datetime, last: datetime) -> Iterator[datetime]:
    month = month_start(first)
    for _ in range(MAX_MONTHS):
        if month > last:
            return
        yield month
        month = next_month(month)
    raise ValueError(f"more than {MAX_MONTHS} months from {first} to {last}")


def _instant(text: str) -> datetime | None:
    if text in ("MINVALUE", "MAXVALUE"):
        return None
    return datetime.fromisoformat(text.strip("'")).astimezone(UTC)


def bounds(
    conn: psycopg.Connection, table: str
) -> list[tuple[str, datetime | None, datetime | None]]:
    """Each partition of ``table``: (name, from, to), None for an open end."""
    out = []
    for name, expression in conn.execute(BOUNDS, {"table": table}):
        match = _BOUND.search(expression or "")
        if match:
            out.append((name, _instant(match.group(1)), _instant(match.group(2))))
    return out


def _covered(parts, month: datetime) -> bool:
    return any(
        (low is None or low <= month) and (high is None or month < high) for _, low, high in parts
    )


class Partitions:
    """Make sure a table has partitions for the months a page touches (cached per process)."""

    def __init__(self, pool: ConnectionPool, table: str):
        self.pool = pool
        self.table = table
        self._known: set[datetime] = set()
        self._lock = threading.Lock()

    def ensure(
        self, first: datetime, last: datetime, each: Callable[[], Iterable[datetime]]
    ) -> None:
        """Create the monthly partitions a page needs (its rows' times from ``each()``,
        asked only when its ``first`` and ``last`` are months apart), in one commit.

        A page whose rows fall in more than MAX_PAGE_MONTHS months is not a page of
        market data: an UpstreamError (502), before anything is made.
        """
        if month_start(last) in (month_start(first), next_month(month_start(first))):
            touched = sorted({month_start(first), month_start(last)})
        else:
            touched = sorted({month_start(when) for when in each()})
        if len(touched) > MAX_PAGE_MONTHS:
            raise UpstreamError(
                f"Bad Gateway: a page of {self.table} spans {len(touched)} months "
                f"({first:%Y-%m} to {last:%Y-%m}); at most {MAX_PAGE_MONTHS} are taken"
            )
        wanted = [month for month in touched if month not in self._known]
        if not wanted:
            return
        with self._lock, db.connection(self.pool) as conn:
            parts = bounds(conn, self.table)
            if any(not _covered(parts, month) for month in wanted):
                conn.execute(LOCK, {"table": self.table})  # then look again, alone
                parts = bounds(conn, self.table)
            for month in wanted:
                if not _covered(parts, month):
                    name = f"{self.table}_p{month:%Y%m}"
                    conn.execute(
                        sql.SQL(
                            "CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})"
                        ).format(
                            sql.Identifier(name),
                            sql.Identifier(self.table),
                            sql.Literal(month),
                            sql.Literal(next_month(month)),
                        )
                    )
                    parts.append((name, month, next_month(month)))
                    log.info("partition %s created", name)
            # Known from now on. Retention drops only months wholly before its cutoff, and
            # a relay-in with retention never fetches before it (PagedRelayIn.retain):
            # what this process drops itself, it forgets (forget()).
            self._known.update(wanted)

    def forget(self) -> None:
        with self._lock:
            self._known.clear()


def prune(conn: psycopg.Connection, table: str, keep: timedelta, now: datetime) -> list[str]:
    """Drop the partitions of ``table`` whose rows are all older than ``now - keep``;
    record where its rows now begin. Returns the partitions dropped."""
    cutoff = now - keep
    conn.execute(LOCK, {"table": table})
    dropped, held_from = [], None
    for name, _, high in bounds(conn, table):
        if high is not None and high <= cutoff:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
            dropped.append(name)
            held_from = high if held_from is None else max(held_from, high)
    if held_from is not None:
        conn.execute(RECORD_HELD_FROM, {"table": table, "held_from": held_from})
        log.info("retention: %s dropped %s; rows now held from %s", table, dropped, held_from)
    return dropped


def held_from(conn: psycopg.Connection, table: str) -> datetime | None:
    """Where ``table``'s rows begin since retention removed older ones; None: nothing removed."""
    row = conn.execute(HELD_FROM, {"table": table}).fetchone()
    return row[0] if row else None
