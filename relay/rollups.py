"""Hourly and daily candles stored beside the 1-minute rows, so a read costs what it returns.

An exchange's 1-minute table ``{candles}`` has two rollups, ``{candles}_1h`` and
``{candles}_1d``, kept by the ingest in the same transaction as the minutes they come
from: every bucket a stored page touches is aggregated again from the level below, so
the open bucket and a corrected minute are always exact. A rollup row holds what the
exchange's rule needs to combine buckets further without the minutes: the open of the
first minute that traded, the high and low over the minutes that traded (null when none
did), the last minute's close and the summed volume.

An interval is answered from the coarsest level that divides it (``1d`` and ``1w`` and
``1M`` from days, ``1h`` to ``12h`` from hours, the rest from minutes). A range that
ends inside a rollup bucket with minutes after its end takes that bucket's part from
the minutes, so every answer equals aggregating the minutes themselves.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import psycopg
from psycopg import sql

from relay.sources.source import Market

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# What each level is, coarsest first; None is the 1-minute table itself.
LEVELS: tuple[tuple[str | None, timedelta], ...] = (
    ("1d", DAY),
    ("1h", HOUR),
    (None, MINUTE),
)


def table(market: Market, level: str | None) -> str:
    return market.candles if level is None else f"{market.candles}_{level}"


# The aggregation that is the exchange's rule, over rows shaped (at, traded_open,
# traded_high, traded_low, close, volume) in any level. Both ordered aggregates take one
# ascending order, so one sort feeds them.
_COMBINE = """
    (array_agg(traded_open ORDER BY at) FILTER (WHERE traded_open IS NOT NULL))[1],
    max(traded_high), min(traded_low), (array_agg(close ORDER BY at))[count(*)], sum(volume)
"""
# A level's rows in that shape: a minute that did not trade (volume 0) adds no open,
# high or low, only its close and its volume.
_SHAPE = {
    None: """
        SELECT open_time AS at,
               CASE WHEN volume > 0 THEN open END AS traded_open,
               CASE WHEN volume > 0 THEN high END AS traded_high,
               CASE WHEN volume > 0 THEN low END AS traded_low,
               close, volume
        FROM {table} WHERE symbol = %(symbol)s AND open_time >= {since} AND open_time < {until}
    """,
    "rollup": """
        SELECT bucket AS at, traded_open, traded_high, traded_low, close, volume
        FROM {table} WHERE symbol = %(symbol)s AND bucket >= {since} AND bucket < {until}
    """,
}
# Buckets of a fixed width align to the epoch (so 1d is a UTC day, as the exchanges
# align theirs), weeks to a Monday; months are calendar months in UTC.
BUCKET = {
    "bin": "date_bin(%(width)s, at, %(origin)s)",
    "month": "date_trunc('month', at, 'UTC')",
}


def _shape(market: Market, level: str | None, since: str, until: str) -> sql.Composed:
    text = _SHAPE[None if level is None else "rollup"]
    return sql.SQL(text).format(
        table=sql.Identifier(table(market, level)),
        since=sql.Placeholder(since),
        until=sql.Placeholder(until),
    )


class Statements(NamedTuple):
    refresh: dict[str, sql.Composed]  # level -> re-aggregate its buckets in a range
    read: dict[tuple[str | None, str], sql.Composed]  # (level, bucket kind) -> candles


@functools.cache
def statements(market: Market) -> Statements:
    refresh = {}
    below: str | None = None
    for level, width in reversed(LEVELS[:-1]):  # hours from minutes, then days from hours
        refresh[level] = sql.SQL(
            """
            INSERT INTO {rollup} AS r
                (symbol, bucket, traded_open, traded_high, traded_low, close, volume)
            SELECT %(symbol)s, date_bin({width}, at, {epoch}) AS bucket, {combine}
            FROM ({rows}) AS rows
            GROUP BY bucket
            ON CONFLICT (symbol, bucket) DO UPDATE SET
                traded_open = excluded.traded_open, traded_high = excluded.traded_high,
                traded_low = excluded.traded_low, close = excluded.close,
                volume = excluded.volume
            """
        ).format(
            rollup=sql.Identifier(table(market, level)),
            width=sql.Literal(width),
            epoch=sql.Literal(EPOCH),
            combine=sql.SQL(_COMBINE),
            rows=_shape(market, below, "first", "last"),
        )
        below = level
    read = {}
    for level, _ in LEVELS:
        for kind, bucket in BUCKET.items():
            rows = _shape(market, None, "cut" if level else "start", "end")
            if level is not None:
                rows = sql.SQL("{} UNION ALL {}").format(
                    _shape(market, level, "start", "cut"), rows
                )
            read[level, kind] = sql.SQL(
                """
                SELECT bucket, coalesce(traded_open, close), coalesce(traded_high, close),
                       coalesce(traded_low, close), close, volume
                FROM (
                    SELECT {bucket} AS bucket, {combine}
                    FROM ({rows}) AS rows
                    GROUP BY 1
                ) AS buckets (bucket, traded_open, traded_high, traded_low, close, volume)
                ORDER BY bucket
                """
            ).format(bucket=sql.SQL(bucket), combine=sql.SQL(_COMBINE), rows=rows)
    return Statements(refresh, read)


def floor(when: datetime, width: timedelta) -> datetime:
    return EPOCH + ((when - EPOCH) // width) * width


def refresh(
    conn: psycopg.Connection, market: Market, symbol: str, first: datetime, last: datetime
) -> None:
    """Aggregate again every hour and day holding a minute in [first, last] (inside the
    caller's transaction, after those minutes were stored)."""
    for level, width in reversed(LEVELS[:-1]):
        span = {"first": floor(first, width), "last": floor(last, width) + width}
        conn.execute(statements(market).refresh[level], {"symbol": symbol, **span})


SPAN = sql.SQL("SELECT min(open_time), max(open_time) FROM {} WHERE symbol = %(symbol)s")


def rebuild(conn: psycopg.Connection, market: Market, symbol: str) -> None:
    """Roll up every minute held for ``symbol`` (after rows were written around the ingest,
    by an import or a test)."""
    first, last = conn.execute(
        SPAN.format(sql.Identifier(market.candles)), {"symbol": symbol}
    ).fetchone()
    if first is not None:
        refresh(conn, market, symbol, first, last)


def level_for(width: timedelta | None) -> tuple[str | None, timedelta]:
    """The coarsest stored level whose buckets tile buckets of ``width`` (None: a month)."""
    for level, size in LEVELS:
        if width is None or width % size == timedelta(0):
            return level, size
    raise AssertionError("minutes divide every interval")


class MinutesGone(Exception):
    """The answer needs 1-minute rows that retention removed (they began at ``held_from``)."""

    def __init__(self, held_from: datetime):
        super().__init__(held_from)
        self.held_from = held_from


def read(
    conn: psycopg.Connection,
    market: Market,
    symbol: str,
    *,
    width: timedelta | None,
    origin: datetime,
    start: datetime,
    end: datetime,
    newest: datetime,
    held_from: datetime | None = None,
) -> list[tuple]:
    """Candles of ``width`` (None: calendar months) over [start, end), ``start`` aligned.

    ``newest`` is the newest minute held: when ``end`` is after it, no minute lies past
    ``end`` and the last rollup bucket is whole; otherwise the part of it before ``end``
    comes from the minutes. ``held_from``: minutes before it were removed (retention);
    an answer that needs them raises MinutesGone rather than leave them out.
    """
    level, size = level_for(width)
    cut = start
    if level is not None:
        cut = max(start, floor(end, size) if end <= newest else floor(end - MINUTE, size) + size)
    if held_from is not None and cut < min(end, held_from):
        raise MinutesGone(held_from)
    kind = "month" if width is None else "bin"
    params = {"symbol": symbol, "width": width, "origin": origin, "start": start, "cut": cut,
              "end": end}  # fmt: skip
    return conn.execute(statements(market).read[level, kind], params).fetchall()
