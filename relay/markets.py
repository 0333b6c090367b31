"""Answers about Binance symbols: latest price, 24-hour profit, resampled candles."""

from __future__ import annotations

import decimal
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from psycopg_pool import ConnectionPool

from relay import db
from relay.errors import BadRequest, NotFound, Unprocessable
from relay.sources.binance import store as candle_store

DAY = timedelta(hours=24)
# Money results are rounded half-to-even to 8 decimal places (Binance's own
# precision); percentages to 4. Intermediate steps use 50 significant digits.
MONEY = Decimal("0.00000001")
PERCENT = Decimal("0.0001")
_CONTEXT = decimal.Context(prec=50, rounding=decimal.ROUND_HALF_EVEN)

INTERVALS = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "1d": timedelta(days=1),
}
DEFAULT_BUCKETS = 500
MAX_BUCKETS = 5000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _not_found(symbol: str) -> NotFound:
    return NotFound(f"Not Found: no data for symbol {symbol}")


def symbols(pool: ConnectionPool) -> dict:
    """The Binance symbols we hold candles for: those price, profit and candles answer."""
    with db.connection(pool) as conn:
        return {"symbols": candle_store.symbols(conn)}


def latest_price(pool: ConnectionPool, symbol: str) -> dict:
    with db.connection(pool) as conn:
        row = candle_store.latest_price(conn, symbol)
    if row is None:
        raise _not_found(symbol)
    price, as_of = row
    return {"symbol": symbol, "price": price, "as_of": as_of}


def profit(pool: ConnectionPool, symbol: str, value: Decimal) -> dict:
    """What ``value`` (quote currency) bought 24 hours before the latest price is worth now.

    price_then is the close of the last 1-minute candle that opened at or
    before ``as_of - 24h``; final_value = value x price_now / price_then.
    """
    with db.connection(pool) as conn:
        latest = candle_store.latest_price(conn, symbol)
        if latest is None:
            raise _not_found(symbol)
        price_now, now = latest
        then = now - DAY
        before = candle_store.price_at(conn, symbol, then)
        oldest = candle_store.oldest_open_time(conn, symbol) if before is None else None
    if before is None:
        held = (now - oldest).total_seconds() / 3600 if oldest else 0.0
        raise Unprocessable(
            f"Unprocessable Entity: {symbol} has {held:.1f} hours of history, 24 are needed",
            data={"symbol": symbol, "history_hours": round(held, 1), "since": oldest},
        )
    price_then = before[0]
    if price_then <= 0:
        raise Unprocessable(f"Unprocessable Entity: {symbol} price 24 hours ago was zero")
    exact_final = _CONTEXT.divide(_CONTEXT.multiply(value, price_now), price_then)
    final_value = exact_final.quantize(MONEY, context=_CONTEXT)
    exact_profit = _CONTEXT.subtract(exact_final, value)
    return {
        "symbol": symbol,
        "value": value,
        "price_then": price_then,
        "price_now": price_now,
        "then": then,
        "now": now,
        "final_value": final_value,
        "profit": _CONTEXT.subtract(final_value, value),
        "profit_percent": _CONTEXT.multiply(
            _CONTEXT.divide(exact_profit, value), Decimal(100)
        ).quantize(PERCENT, context=_CONTEXT),
    }


def candles(
    pool: ConnectionPool,
    symbol: str,
    interval: str,
    start: datetime | None,
    end: datetime | None,
) -> dict:
    """Resample 1-minute candles into ``interval`` buckets over [start, end).

    A bucket is built as Binance builds its own bars: open, high and low from
    the minutes that traded (volume > 0), close from the last minute, volume
    summed; a bucket with no trade is the carried price four times.

    Without ``end`` the range ends after the newest candle; without
    ``start`` it covers the 500 buckets before ``end``. Buckets align to
    the Unix epoch (so 1d is a UTC day); a bucket with no data is absent.
    """
    width = INTERVALS[interval]
    with db.connection(pool) as conn:
        if end is None:
            newest = candle_store.newest_open_time(conn, symbol)
            if newest is None:
                raise _not_found(symbol)
            end = newest + timedelta(minutes=1)
        start = _floor(start if start is not None else end - DEFAULT_BUCKETS * width, width)
        if (end - start) / width > MAX_BUCKETS:
            raise BadRequest(
                f"Bad Request: start parameter is too far before end: at most "
                f"{MAX_BUCKETS} {interval} candles a request"
            )
        rows = candle_store.resample(conn, symbol, width, start, end)
        if not rows and candle_store.newest_open_time(conn, symbol) is None:
            raise _not_found(symbol)
    return {
        "symbol": symbol,
        "interval": interval,
        "candles": [
            {"time": r[0], "open": r[1], "high": r[2], "low": r[3], "close": r[4], "volume": r[5]}
            for r in rows
        ],
    }


def _floor(when: datetime, width: timedelta) -> datetime:
    return _EPOCH + ((when - _EPOCH) // width) * width
