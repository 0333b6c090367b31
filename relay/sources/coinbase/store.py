"""Coinbase in PostgreSQL: candles go through relay.candles; the ticker is kept here."""

from __future__ import annotations

from datetime import datetime

import psycopg

from relay.notify import announce
from relay.sources.coinbase.client import Ticker

# The newest ticker of a product; an older answer never replaces a newer one.
UPSERT_TICKER = """
    INSERT INTO coinbase_ticker AS t (symbol, last_price, size, bid, ask, volume, trade_id,
        traded_at, fetched_at)
    VALUES (%(symbol)s, %(last_price)s, %(size)s, %(bid)s, %(ask)s, %(volume)s, %(trade_id)s,
        %(traded_at)s, %(fetched_at)s)
    ON CONFLICT (symbol) DO UPDATE SET
        last_price = EXCLUDED.last_price, size = EXCLUDED.size, bid = EXCLUDED.bid,
        ask = EXCLUDED.ask, volume = EXCLUDED.volume, trade_id = EXCLUDED.trade_id,
        traded_at = EXCLUDED.traded_at, fetched_at = EXCLUDED.fetched_at
    WHERE EXCLUDED.traded_at >= t.traded_at
        AND (EXCLUDED.trade_id, EXCLUDED.last_price, EXCLUDED.bid, EXCLUDED.ask,
             EXCLUDED.volume) IS DISTINCT FROM (t.trade_id, t.last_price, t.bid, t.ask, t.volume)
"""


WALKED_TO = "SELECT walked_to FROM coinbase_progress WHERE symbol = %(symbol)s"

NOTE_WALKED = """
    INSERT INTO coinbase_progress AS p (symbol, walked_to) VALUES (%(symbol)s, %(walked_to)s)
    ON CONFLICT (symbol) DO UPDATE SET walked_to = EXCLUDED.walked_to
    WHERE EXCLUDED.walked_to > p.walked_to
"""


def walked_to(conn: psycopg.Connection, symbol: str) -> datetime | None:
    row = conn.execute(WALKED_TO, {"symbol": symbol}).fetchone()
    return row[0] if row else None


def note_walked(conn: psycopg.Connection, symbol: str, until: datetime) -> None:
    """Remember that the windows up to ``until`` are stored (inside the page's transaction)."""
    conn.execute(NOTE_WALKED, {"symbol": symbol, "walked_to": until})


def store_ticker(conn: psycopg.Connection, ticker: Ticker, fetched_at: datetime) -> None:
    if conn.execute(UPSERT_TICKER, {**ticker._asdict(), "fetched_at": fetched_at}).rowcount:
        announce(conn, "candles")
