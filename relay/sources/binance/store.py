"""Binance candles and tickers in PostgreSQL: every query of this concern."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import psycopg

from relay import db
from relay.notify import announce
from relay.sources.binance.client import Kline, Ticker

NEWEST_OPEN_TIME = "SELECT max(open_time) FROM binance_candle WHERE symbol = %(symbol)s"

OLDEST_OPEN_TIME = "SELECT min(open_time) FROM binance_candle WHERE symbol = %(symbol)s"

CREATE_STAGE = """
    CREATE TEMP TABLE IF NOT EXISTS candle_stage (
        open_time timestamptz, close_time timestamptz,
        open numeric, high numeric, low numeric, close numeric, volume numeric,
        quote_volume numeric, trades bigint, taker_buy_base numeric, taker_buy_quote numeric
    ) ON COMMIT DELETE ROWS
"""

# Text COPY, lines built by _lines().
COPY_STAGE = """
    COPY candle_stage (open_time, close_time, open, high, low, close, volume,
                       quote_volume, trades, taker_buy_base, taker_buy_quote)
    FROM STDIN
"""

# Minutes after the newest one stored cannot be there yet: straight in, no merge.
COPY_DIRECT = """
    COPY binance_candle (open_time, close_time, open, high, low, close, volume,
                         quote_volume, trades, taker_buy_base, taker_buy_quote,
                         symbol, fetched_at)
    FROM STDIN
"""

# A candle seen again is rewritten only when Binance changed it (the open
# minute, or a late correction), so rowcount counts rows new or changed.
MERGE_STAGE = """
    INSERT INTO binance_candle AS c (symbol, open_time, close_time, open, high, low, close,
        volume, quote_volume, trades, taker_buy_base, taker_buy_quote, fetched_at)
    SELECT DISTINCT ON (open_time) %(symbol)s, open_time, close_time, open, high, low, close,
        volume, quote_volume, trades, taker_buy_base, taker_buy_quote, %(fetched_at)s
    FROM candle_stage
    ORDER BY open_time
    ON CONFLICT (symbol, open_time) DO UPDATE SET
        close_time = EXCLUDED.close_time, open = EXCLUDED.open, high = EXCLUDED.high,
        low = EXCLUDED.low, close = EXCLUDED.close, volume = EXCLUDED.volume,
        quote_volume = EXCLUDED.quote_volume, trades = EXCLUDED.trades,
        taker_buy_base = EXCLUDED.taker_buy_base, taker_buy_quote = EXCLUDED.taker_buy_quote,
        fetched_at = EXCLUDED.fetched_at
    WHERE (c.close_time, c.open, c.high, c.low, c.close, c.volume, c.quote_volume, c.trades,
           c.taker_buy_base, c.taker_buy_quote)
        IS DISTINCT FROM
          (EXCLUDED.close_time, EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close,
           EXCLUDED.volume, EXCLUDED.quote_volume, EXCLUDED.trades,
           EXCLUDED.taker_buy_base, EXCLUDED.taker_buy_quote)
"""

UPSERT_TICKER = """
    INSERT INTO binance_ticker AS t (symbol, last_price, open_price, high_price, low_price,
        volume, quote_volume, price_change, price_change_percent, open_time, close_time,
        trades, fetched_at)
    VALUES (%(symbol)s, %(last_price)s, %(open_price)s, %(high_price)s, %(low_price)s,
        %(volume)s, %(quote_volume)s, %(price_change)s, %(price_change_percent)s,
        %(open_time)s, %(close_time)s, %(trades)s, %(fetched_at)s)
    ON CONFLICT (symbol) DO UPDATE SET
        last_price = EXCLUDED.last_price, open_price = EXCLUDED.open_price,
        high_price = EXCLUDED.high_price, low_price = EXCLUDED.low_price,
        volume = EXCLUDED.volume, quote_volume = EXCLUDED.quote_volume,
        price_change = EXCLUDED.price_change,
        price_change_percent = EXCLUDED.price_change_percent,
        open_time = EXCLUDED.open_time, close_time = EXCLUDED.close_time,
        trades = EXCLUDED.trades, fetched_at = EXCLUDED.fetched_at
    WHERE EXCLUDED.close_time > t.close_time
"""

# The freshest price we hold: the ticker's last price, or the newest candle's
# close (as of when we stored it, for a minute that was still open) if newer.
LATEST_PRICE = """
    SELECT price, as_of FROM (
        SELECT last_price AS price, close_time AS as_of
        FROM binance_ticker WHERE symbol = %(symbol)s
        UNION ALL
        (SELECT close, least(close_time, fetched_at)
         FROM binance_candle WHERE symbol = %(symbol)s
         ORDER BY open_time DESC LIMIT 1)
    ) AS latest
    ORDER BY as_of DESC
    LIMIT 1
"""

# Every symbol with candles, by a loose index scan of the primary key: one
# probe per symbol, so its cost follows the symbol count, not the rows.
SYMBOLS = """
    WITH RECURSIVE held AS (
        (SELECT symbol FROM binance_candle ORDER BY symbol LIMIT 1)
        UNION ALL
        SELECT (SELECT c.symbol FROM binance_candle AS c
                WHERE c.symbol > held.symbol ORDER BY c.symbol LIMIT 1)
        FROM held WHERE held.symbol IS NOT NULL
    )
    SELECT symbol FROM held WHERE symbol IS NOT NULL
"""

# The close of the last 1-minute candle that opened at or before a moment.
PRICE_AT = """
    SELECT close, open_time FROM binance_candle
    WHERE symbol = %(symbol)s AND open_time <= %(at)s
    ORDER BY open_time DESC
    LIMIT 1
"""

# OHLCV buckets from 1-minute rows, built as Binance builds its own bars. A minute without
# a trade comes with volume 0 and the previous close as open, high, low and close; that
# carried price is no trade, so open (the first traded minute's), high and low come from the
# minutes that traded. Close is the last minute's and volume the sum; a bucket in which
# nothing traded is its carried price four times. Both ordered aggregates take one ascending
# order, so the one sort by (bucket, open_time) feeds them and no group is sorted again.
RESAMPLE = """
    SELECT bucket, coalesce(traded_open, close) AS open, coalesce(traded_high, close) AS high,
           coalesce(traded_low, close) AS low, close, volume
    FROM (
        SELECT date_bin(%(width)s, open_time, timestamptz '1970-01-01 00:00:00+00') AS bucket,
               (array_agg(open ORDER BY open_time) FILTER (WHERE volume > 0))[1] AS traded_open,
               max(high) FILTER (WHERE volume > 0) AS traded_high,
               min(low) FILTER (WHERE volume > 0) AS traded_low,
               (array_agg(close ORDER BY open_time))[count(*)] AS close,
               sum(volume) AS volume
        FROM binance_candle
        WHERE symbol = %(symbol)s AND open_time >= %(start)s AND open_time < %(end)s
        GROUP BY bucket
    ) AS buckets
    ORDER BY bucket
"""


def newest_open_time(conn: psycopg.Connection, symbol: str) -> datetime | None:
    return conn.execute(NEWEST_OPEN_TIME, {"symbol": symbol}).fetchone()[0]


def symbols(conn: psycopg.Connection) -> list[str]:
    return [row[0] for row in conn.execute(SYMBOLS)]


def oldest_open_time(conn: psycopg.Connection, symbol: str) -> datetime | None:
    return conn.execute(OLDEST_OPEN_TIME, {"symbol": symbol}).fetchone()[0]


def _lines(klines: Sequence[Kline], tail: str) -> Iterator[str]:
    """Klines as COPY text lines: Decimals print every digit they were parsed from."""
    for k in klines:
        yield (
            f"{k.open_time.isoformat()}\t{k.close_time.isoformat()}\t{k.open}\t{k.high}\t"
            f"{k.low}\t{k.close}\t{k.volume}\t{k.quote_volume}\t{k.trades}\t"
            f"{k.taker_buy_base}\t{k.taker_buy_quote}{tail}"
        )


def store_klines(
    conn: psycopg.Connection,
    symbol: str,
    klines: Sequence[Kline],
    fetched_at: datetime,
    stored_upto: datetime | None = None,
) -> int:
    """Store a page of klines through COPY; return how many rows were new or changed.

    ``stored_upto`` is the newest minute stored for the symbol before this
    page (None: nothing stored). Minutes after it are COPYed straight into the
    table; the rest (the minute that may have been open, a late correction) go
    through a staging table and an upsert that rewrites only what changed
    (db.copy_new_else_merge).
    """
    if not klines:
        return 0

    def copy_new(cur: psycopg.Cursor, new: list[Kline]) -> None:
        tail = f"\t{db.copy_text(symbol)}\t{fetched_at.isoformat()}\n"
        db.copy_lines(cur, COPY_DIRECT, _lines(new, tail))

    def merge(cur: psycopg.Cursor, seen: list[Kline]) -> int:
        cur.execute(CREATE_STAGE)
        db.copy_lines(cur, COPY_STAGE, _lines(seen, "\n"))
        cur.execute(MERGE_STAGE, {"symbol": symbol, "fetched_at": fetched_at})
        return cur.rowcount

    by_minute = {kline.open_time: kline for kline in klines}  # one row a minute, always
    stored = db.copy_new_else_merge(
        conn,
        list(by_minute.values()),
        lambda k: stored_upto is None or k.open_time > stored_upto,
        copy_new,
        merge,
    )
    if stored:
        announce(conn, "candles")
    return stored


def store_ticker(conn: psycopg.Connection, ticker: Ticker, fetched_at: datetime) -> None:
    """Keep the newest ticker of a symbol (an older answer never replaces a newer one)."""
    if conn.execute(UPSERT_TICKER, {**ticker._asdict(), "fetched_at": fetched_at}).rowcount:
        announce(conn, "candles")


def latest_price(conn: psycopg.Connection, symbol: str) -> tuple[Decimal, datetime] | None:
    return conn.execute(LATEST_PRICE, {"symbol": symbol}).fetchone()


def price_at(
    conn: psycopg.Connection, symbol: str, at: datetime
) -> tuple[Decimal, datetime] | None:
    return conn.execute(PRICE_AT, {"symbol": symbol, "at": at}).fetchone()


def resample(
    conn: psycopg.Connection, symbol: str, width: timedelta, start: datetime, end: datetime
) -> list[tuple]:
    return conn.execute(
        RESAMPLE, {"symbol": symbol, "width": width, "start": start, "end": end}
    ).fetchall()
