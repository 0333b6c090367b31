"""Relay-out routes for exchange symbols: symbols, price, 24-hour profit, candles.

Each takes ``exchange`` (any exchange in relay.sources.registry.MARKETS, the first by
default) and ``symbol`` (``currency``, the seed's spelling, is an alias on price and
profit), and answers in the same shapes for every exchange.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from relay import caching, markets, params
from relay.errors import BadRequest
from relay.markets import Markets

MAX_VALUE = Decimal("1e15")
MAX_VALUE_DECIMALS = 18


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
    aliases: tuple[str, ...] = ()  # other spellings of ``symbol`` this route takes

    def __init__(self, service: Markets):
        self._markets = service
        self._default = next(iter(service.markets))

    def _exchange(self, req) -> str:
        return params.choice(req, "exchange", self._markets.markets, self._default)

    def _symbol(self, req, exchange: str) -> str:
        name, raw = params.aliased(req, "symbol", *self.aliases, required=True)
        try:
            return self._markets.markets[exchange].resolve(raw)
        except BadRequest:
            raise BadRequest(f"Bad Request: {name} parameter is not a valid symbol") from None


class SymbolsResource(_MarketResource):
    """GET /relay-out/symbols?exchange=binance"""

    def on_get(self, req, resp):
        caching.send_body(resp, self._markets.symbols(self._exchange(req)))


class PriceResource(_MarketResource):
    """GET /relay-out/price?symbol=ADAUSDT&exchange=binance"""

    aliases = ("currency",)

    def on_get(self, req, resp):
        exchange = self._exchange(req)
        symbol = self._symbol(req, exchange)
        caching.send_body(resp, self._markets.price(exchange, symbol))


class ProfitResource(_MarketResource):
    """GET /relay-out/profit?value=1000&symbol=ADAUSDT&exchange=binance"""

    aliases = ("currency",)

    def on_get(self, req, resp):
        exchange = self._exchange(req)
        symbol = self._symbol(req, exchange)
        value = parse_value(req)
        caching.send_body(resp, self._markets.profit(exchange, symbol, value))


class CandlesResource(_MarketResource):
    """GET /relay-out/candles?symbol=BTCUSDT&interval=1h&start=&end=&exchange=binance"""

    def on_get(self, req, resp):
        exchange = self._exchange(req)
        symbol = self._symbol(req, exchange)
        interval = markets.interval(params.text(req, "interval") or "1h")
        start, end = params.time_range(req)
        caching.send_body(resp, self._markets.candles(exchange, symbol, interval, start, end))
