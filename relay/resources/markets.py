"""Relay-out routes for Binance symbols: price, 24-hour profit, candles."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from relay import caching, markets, params
from relay.changes import AnswerCache
from relay.errors import BadRequest
from relay.sources.binance.client import resolve_symbol

MAX_VALUE = Decimal("1e15")
MAX_VALUE_DECIMALS = 18


def _symbol(req, name: str) -> str:
    raw = params.text(req, name, required=True)
    try:
        return resolve_symbol(raw)
    except BadRequest:
        raise BadRequest(f"Bad Request: {name} parameter is not a valid symbol") from None


def parse_value(req) -> Decimal:
    """A positive, finite amount of at most 1e15 with at most 18 decimals."""
    raw = params.text(req, "value", required=True)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = None
    if (
        value is None
        or not value.is_finite()
        or value <= 0
        or value > MAX_VALUE
        or -value.as_tuple().exponent > MAX_VALUE_DECIMALS
    ):
        raise BadRequest(
            "Bad Request: value parameter must be a positive number no larger than 1e15"
        )
    return value


class _MarketResource:
    auth_scope = "relay:out"

    def __init__(self, pool, cache: AnswerCache):
        self._pool = pool
        self._cache = cache

    def _answer(self, resp, key: tuple, compute) -> None:
        body = self._cache.get("candles", key, lambda: caching.ok_body(compute()))
        caching.send_body(resp, body)


class SymbolsResource(_MarketResource):
    """GET /relay-out/symbols"""

    def on_get(self, req, resp):
        self._answer(resp, ("symbols",), lambda: markets.symbols(self._pool))


class PriceResource(_MarketResource):
    """GET /relay-out/price?currency=ADAUSDT"""

    def on_get(self, req, resp):
        symbol = _symbol(req, "currency")
        self._answer(resp, ("price", symbol), lambda: markets.latest_price(self._pool, symbol))


class ProfitResource(_MarketResource):
    """GET /relay-out/profit?value=1000&currency=ADAUSDT"""

    def on_get(self, req, resp):
        symbol = _symbol(req, "currency")
        value = parse_value(req)
        # str: 1000 and 1000.0 are equal Decimals, but the answer echoes the digits given
        key = ("profit", symbol, str(value))
        self._answer(resp, key, lambda: markets.profit(self._pool, symbol, value))


class CandlesResource(_MarketResource):
    """GET /relay-out/candles?symbol=BTCUSDT&interval=1h&start=&end="""

    def on_get(self, req, resp):
        symbol = _symbol(req, "symbol")
        interval = params.text(req, "interval") or "1h"
        if interval not in markets.INTERVALS:
            raise BadRequest(
                "Bad Request: interval parameter must be one of " + ", ".join(markets.INTERVALS)
            )
        start, end = params.time_range(req)
        key = ("candles", symbol, interval, start, end)
        self._answer(resp, key, lambda: markets.candles(self._pool, symbol, interval, start, end))
