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


def store_ticker(conn: psycopg.Connection, ticker: Ticker, fetched_at: datetime) -> None:
    if conn.execute(UPSERT_TICKER, {**ticker._asdict(), "fetched_at": fetched_at}).rowcount:
        announce(conn, "candles")
