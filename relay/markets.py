"""Answers about exchange symbols: latest price, 24-hour profit, resampled candles.

Every exchange in relay.sources.registry.MARKETS answers the same questions in the
same shapes, from its own tables (relay.candles); answers are cached until the
exchange's candles change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from relay import caching, candles, params, partitions, rollups
from relay.changes import AnswerCache
from relay.errors import BadRequest, NotFound, Unprocessable
from relay.reads import Reads
from relay.sources.numbers import ARITHMETIC as _CONTEXT
from relay.sources.source import Market

DAY = timedelta(hours=24)
# Money results are rounded half-to-even to 8 decimal places (Binance's own
# precision); percentages to 4. Intermediate steps are exact up to that (ARITHMETIC).
MONEY = Decimal("0.00000001")
PERCENT = Decimal("0.0001")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclasses.dataclass(frozen=True)
class Interval:
    """A candle width aligned as the exchanges align their klines: fixed widths to the
    Unix epoch (so 1d is a UTC day), weeks to Monday 00:00 UTC, months to the 1st."""

    width: timedelta | None  # None: a calendar month
    origin: datetime = _EPOCH

    def floor(self, when: datetime) -> datetime:
        when = when.astimezone(UTC)
        if self.width is None:
            return when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return self.origin + ((when - self.origin) // self.width) * self.width

    def back(self, when: datetime, count: int) -> datetime:
        """``count`` buckets before ``when``."""
        if self.width is not None:
            return when - count * self.width
        months = when.year * 12 + when.month - 1 - count
        return self.floor(when).replace(year=months // 12, month=months % 12 + 1)

    def count(self, start: datetime, end: datetime) -> float:
        """How many buckets [start, end) spans (start aligned)."""
        if self.width is not None:
            return (end - start) / self.width
        end = end.astimezone(UTC)
        months = (end.year - start.year) * 12 + end.month - start.month
        return months + (end > self.floor(end))


INTERVALS = {
    "1m": Interval(timedelta(minutes=1)),
    "3m": Interval(timedelta(minutes=3)),
    "5m": Interval(timedelta(minutes=5)),
    "15m": Interval(timedelta(minutes=15)),
    "30m": Interval(timedelta(minutes=30)),
    "1h": Interval(timedelta(hours=1)),
    "2h": Interval(timedelta(hours=2)),
    "4h": Interval(timedelta(hours=4)),
    "6h": Interval(timedelta(hours=6)),
    "8h": Interval(timedelta(hours=8)),
    "12h": Interval(timedelta(hours=12)),
    "1d": Interval(timedelta(days=1)),
    "1w": Interval(timedelta(weeks=1), datetime(1970, 1, 5, tzinfo=UTC)),  # a Monday
    "1M": Interval(None),
}
DEFAULT_BUCKETS = 500
MAX_BUCKETS = 5000


def interval(text: str) -> str:
    """An interval as the exchanges write it; other case is read where it means the same.

    Only ``m`` and ``M`` differ (a minute, a month), so ``1H`` is ``1h`` but ``1M`` is not
    ``1m``.
    """
    name = text if text in INTERVALS or text.endswith("M") else text.lower()
    if not text.isascii() or name not in INTERVALS:
        raise BadRequest("Bad Request: interval parameter must be one of " + ", ".join(INTERVALS))
    return name


def interval_pattern(name: str) -> str:
    """What ``interval`` accepts for ``name``: any case, but m and M stay (M is a month)."""
    return "".join(c if c in "mM" else params.any_case(c) for c in name)


class Markets:
    """The market answers of every exchange, each serialized once and cached."""

    def __init__(self, reads: Reads, cache: AnswerCache, markets: Mapping[str, Market]):
        self._reads = reads
        self._cache = cache
        self.markets = dict(markets)

    def _answer(self, key: tuple, compute) -> bytes:
        return self._cache.get(candles.CONCERN, key, lambda: caching.ok_body(compute()))

    def symbols(self, exchange: str) -> bytes:
        return self._answer(
            ("symbols", exchange), lambda: symbols(self._reads, self.markets[exchange])
        )

    def price(self, exchange: str, symbol: str) -> bytes:
        return self._answer(
            ("price", exchange, symbol),
            lambda: latest_price(self._reads, self.markets[exchange], symbol),
        )

    def profit(self, exchange: str, symbol: str, value: Decimal) -> bytes:
        # str: 1000 and 1000.0 are equal Decimals, but the answer echoes the digits given
        return self._answer(
            ("profit", exchange, symbol, str(value)),
            lambda: profit(self._reads, self.markets[exchange], symbol, value),
        )

    def candles(
        self,
        exchange: str,
        symbol: str,
        interval: str,
        start: datetime | None,
        end: datetime | None,
    ) -> bytes:
        market = self.markets[exchange]
        return self._answer(
            ("candles", exchange, symbol, interval, start, end),
            lambda: resample(self._reads, market, symbol, interval, start, end),
        )


def _not_found(symbol: str) -> NotFound:
    return NotFound(f"Not Found: no data for symbol {symbol}")


def symbols(reads: Reads, market: Market) -> dict:
    """The symbols we hold candles for: those price, profit and candles answer."""
    with reads.connection(candles.CONCERN) as conn:
        return {"symbols": candles.symbols(conn, market)}


def latest_price(reads: Reads, market: Market, symbol: str) -> dict:
    with reads.connection(candles.CONCERN) as conn:
        row = candles.latest_price(conn, market, symbol)
    if row is None:
        raise _not_found(symbol)
    price, as_of = row
    return {"symbol": symbol, "quote": market.quote(symbol), "price": price, "as_of": as_of}


def profit(reads: Reads, market: Market, symbol: str, value: Decimal) -> dict:
    """What ``value`` (quote currency, named in ``quote``) bought 24 hours before the latest
    price is worth now.

    price_then is the close of the last 1-minute candle that opened at or
    before ``as_of - 24h``; final_value = value x price_now / price_then.
    """
    with reads.connection(candles.CONCERN) as conn:
        latest = candles.latest_price(conn, market, symbol)
        if latest is None:
            raise _not_found(symbol)
        price_now, now = latest
        then = now - DAY
        before = candles.price_at(conn, market, symbol, then)
        oldest = candles.oldest_open_time(conn, market, symbol) if before is None else None
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
        "quote": market.quote(symbol),
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


def resample(
    reads: Reads,
    market: Market,
    symbol: str,
    interval: str,
    start: datetime | None,
    end: datetime | None,
) -> dict:
    """Candles of ``interval`` over [start, end), from the coarsest stored level that
    divides it (relay.rollups), equal to aggregating the 1-minute candles themselves.

    A bucket is built as Binance builds its own bars: open, high and low from
    the minutes that traded (volume > 0), close from the last minute, volume
    summed; a bucket with no trade is the carried price four times.

    Without ``end`` the range ends after the newest candle; without
    ``start`` it covers the 500 buckets before ``end``. Buckets align as
    the exchanges align theirs (Interval); a bucket with no data is absent.
    """
    every = INTERVALS[interval]
    with reads.connection(candles.CONCERN, snapshot=True) as conn:
        # One snapshot for the newest minute, retention's mark and the buckets: a minute
        # stored in between cannot slip into a bucket past ``end``.
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        newest = candles.newest_open_time(conn, market, symbol)
        if newest is None:
            raise _not_found(symbol)
        if end is None:
            end = newest + timedelta(minutes=1)
        held_from = partitions.held_from(conn, market.candles)
        if start is None:
            start = every.back(end, DEFAULT_BUCKETS)
            # By default, what the minutes still cover; a range that ends before they
            # begin is left as asked, so the read says they are gone (404), not [] (200).
            minutes = rollups.level_for(every.width)[0] is None
            if held_from is not None and held_from < end and minutes:
                start = max(start, held_from)
        start = every.floor(start)
        if every.count(start, end) > MAX_BUCKETS:
            raise BadRequest(
                f"Bad Request: start parameter is too far before end: at most "
                f"{MAX_BUCKETS} {interval} candles a request"
            )
        try:
            rows = rollups.read(
                conn, market, symbol, width=every.width, origin=every.origin,
                start=start, end=end, newest=newest, held_from=held_from,
            )  # fmt: skip
        except rollups.MinutesGone as gone:
            held = gone.held_from.strftime("%Y-%m-%dT%H:%M:%SZ")
            raise NotFound(
                f"Not Found: 1-minute candles before {held} are no longer held "
                f"(RELAY_RETAIN_CANDLES_1M); {interval} candles need them for this range",
                data={"symbol": symbol, "held_from": gone.held_from},
            ) from None
    return {
        "symbol": symbol,
        "quote": market.quote(symbol),
        "interval": interval,
        "candles": [
            {"time": r[0], "open": r[1], "high": r[2], "low": r[3], "close": r[4], "volume": r[5]}
            for r in rows
        ],
    }
