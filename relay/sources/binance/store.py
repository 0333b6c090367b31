"""Binance in PostgreSQL: candles go through relay.candles; the 24-hour ticker is kept here."""

from __future__ import annotations

from datetime import datetime

import psycopg

from relay.notify import announce
from relay.sources.binance.client import Ticker

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


def store_ticker(conn: psycopg.Connection, ticker: Ticker, fetched_at: datetime) -> None:
    """Keep the newest ticker of a symbol (an older answer never replaces a newer one)."""
    if conn.execute(UPSERT_TICKER, {**ticker._asdict(), "fetched_at": fetched_at}).rowcount:
        announce(conn, "candles")
