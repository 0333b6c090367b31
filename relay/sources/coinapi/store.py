"""CoinAPI trades in PostgreSQL: every query of this concern, and nothing else."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import psycopg

from relay import db
from relay.notify import announce
from relay.sources.coinapi.client import Trade, TradePage, time_key

# The ends of every range, so one static query (and one plan) serves all
# combinations of optional start, end and cursor.
_MIN_TIME = "-infinity"
_MAX_TIME = "infinity"
_MAX_UUID = uuid.UUID(int=(1 << 128) - 1)

TABLE = "symbol_data"  # partitioned by month of time_exchange (relay.partitions)
SYMBOL_ID = "SELECT id FROM symbol WHERE symbol_id = %(symbol_id)s"

ENSURE_SYMBOL = """
    INSERT INTO symbol (symbol_id) VALUES (%(symbol_id)s)
    ON CONFLICT (symbol_id) DO NOTHING
"""

NEWEST_TIME = """
    SELECT max(time_exchange) FROM symbol_data
    WHERE symbol = (SELECT id FROM symbol WHERE symbol_id = %(symbol_id)s)
      AND time_exchange <= %(upto)s
"""

CREATE_STAGE = """
    CREATE TEMP TABLE IF NOT EXISTS trade_stage (
        uuid uuid, time_exchange timestamptz, time_coinapi timestamptz,
        price numeric, size numeric, taker_side text
    ) ON COMMIT DELETE ROWS
"""

# Emptied before each page: the transaction may merge several pages one by one.
CLEAR_STAGE = "TRUNCATE trade_stage"

# COPY's text format: each trade goes in as the digits and times CoinAPI sent.
COPY_STAGE = """
    COPY trade_stage (uuid, time_exchange, time_coinapi, price, size, taker_side) FROM STDIN
"""

# Straight into the table, for trades newer than anything stored for the symbol.
COPY_DIRECT = """
    COPY symbol_data (uuid, time_exchange, time_coinapi, price, size, taker_side, symbol)
    FROM STDIN
"""

MERGE_STAGE = """
    INSERT INTO symbol_data (uuid, symbol, time_exchange, time_coinapi, price, size, taker_side)
    SELECT uuid, (SELECT id FROM symbol WHERE symbol_id = %(symbol_id)s),
           time_exchange, time_coinapi, price, size, taker_side
    FROM trade_stage
    ON CONFLICT (symbol, time_exchange, uuid) DO NOTHING
"""

RECORDS = """
    SELECT uuid, time_exchange, time_coinapi, price, size, taker_side
    FROM symbol_data
    WHERE symbol = %(symbol)s
      AND time_exchange >= %(start)s::timestamptz
      AND time_exchange < %(end)s::timestamptz
      AND (time_exchange, uuid) < (%(after_time)s::timestamptz, %(after_uuid)s::uuid)
    ORDER BY time_exchange DESC, uuid DESC
    LIMIT %(limit)s
"""


def newest_time(conn: psycopg.Connection, symbol_id: str, upto: datetime) -> datetime | None:
    """Return the newest trade time stored for a symbol at or before ``upto``: where
    relay-in resumes, with ``upto`` its now, so a trade an exchange stamped in the future
    cannot carry it past the trades still to come (that one is fetched again, and
    skipped, until its time has come)."""
    return conn.execute(NEWEST_TIME, {"symbol_id": symbol_id, "upto": upto}).fetchone()[0]


def store_page(
    conn: psycopg.Connection,
    symbol_id: str,
    trades: TradePage | Sequence[Trade],
    stored_upto: datetime | None = None,
) -> int:
    """Store one page of trades through COPY; return how many were new.

    Runs inside the caller's transaction, so a page is stored whole or not at
    all. Trades already stored (same uuid) are skipped, not duplicated.

    ``stored_upto`` is the newest time stored for the symbol before this page
    (None: nothing stored). Trades after it cannot be stored yet, so they are
    COPYed straight into the table; the rest go through a staging table and
    ``ON CONFLICT DO NOTHING`` (db.copy_new_else_merge).
    """
    page = trades if isinstance(trades, TradePage) else TradePage.of(trades)
    conn.execute(ENSURE_SYMBOL, {"symbol_id": symbol_id})

    def copy_new(cur: psycopg.Cursor, new: list[str]) -> None:
        symbol = symbol_pk(conn, symbol_id)
        db.copy_joined(cur, COPY_DIRECT, new, f"\t{symbol}\n")

    def merge(cur: psycopg.Cursor, seen: list[str]) -> int:
        cur.execute(CREATE_STAGE)
        cur.execute(CLEAR_STAGE)
        db.copy_joined(cur, COPY_STAGE, seen, "\n")
        cur.execute(MERGE_STAGE, {"symbol_id": symbol_id})
        return cur.rowcount

    keys, lines = page.unique()
    after = None if stored_upto is None else time_key(stored_upto)
    stored = db.copy_new_else_merge(conn, *db.split_after(keys, lines, after), copy_new, merge)
    if stored:
        announce(conn, "trades")
    return stored


def symbol_pk(conn: psycopg.Connection, symbol_id: str) -> int | None:
    row = conn.execute(SYMBOL_ID, {"symbol_id": symbol_id}).fetchone()
    return row[0] if row else None


def records(
    conn: psycopg.Connection,
    symbol: int,
    *,
    start: datetime | None,
    end: datetime | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[tuple]:
    """Return up to ``limit`` trades newest first, strictly after the cursor."""
    after_time, after_uuid = after if after else (_MAX_TIME, _MAX_UUID)
    return conn.execute(
        RECORDS,
        {
            "symbol": symbol,
            "start": start or _MIN_TIME,
            "end": end or _MAX_TIME,
            "after_time": after_time,
            "after_uuid": after_uuid,
            "limit": limit,
        },
    ).fetchall()
