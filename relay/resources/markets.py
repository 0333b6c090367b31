"""Relay-out routes for exchange symbols: symbols, price, 24-hour profit, candles.

Each takes ``exchange`` (any exchange in relay.sources.registry.MARKETS, the first by
default) and ``symbol`` (``currency``, the seed's spelling, is an alias on price and
profit), and answers in the same shapes for every exchange.
"""

from __future__ import annotations

import re
from decimal import Decimal

from relay import caching, markets, params
from relay.errors import BadRequest, NotFound
from relay.markets import Markets
from relay.sources import symbols
from relay.sources.registry import MARKETS

EXCHANGE = params.choice_param(
    "exchange",
    MARKETS,
    default=next(iter(MARKETS)),
    description="the exchange whose candles and tickers answer",
)
# Any exchange's symbol, in any case (the patterns are written upper-case); one that is
# not the asked exchange's shape is simply not held there.
ANY_SYMBOL = re.compile(
    "|".join(f"(?:{symbols.any_case(m.market.pattern)})" for m in MARKETS.values())
)


def symbol_param(aliases: tuple[str, ...] = ()) -> params.Param:
    return params.text_param(
        "symbol",
        required=True,
        pattern=ANY_SYMBOL,
        message="is not a valid symbol",
        aliases=aliases,
        example="ADAUSDT",
    )


# A positive amount of at most 1e15 with at most 18 decimals, in plain digits.
_VALUE = re.compile(
    r"^([1-9][0-9]{0,14}(\.[0-9]{1,18})?|0\.(?=[0-9]{1,18}$)[0-9]*[1-9][0-9]*"
    r"|1000000000000000(\.0{1,18})?)$"
)


def _value(raw: str, used: str) -> Decimal:
    if not _VALUE.match(raw):
        raise BadRequest(
            f"Bad Request: {used} parameter must be a positive number no larger than 1e15 "
            "with at most 18 decimals"
        )
    return Decimal(raw)


VALUE = params.Param(
    "value",
    {"type": "string", "pattern": _VALUE.pattern},
    _value,
    required=True,
    description="positive decimal, at most 1e15 with at most 18 decimals",
    example="1000",
)
INTERVAL = params.Param(
    "interval",
    {
        "type": "string",
        "pattern": "^(" + "|".join(markets.interval_pattern(i) for i in markets.INTERVALS) + ")$",
        "default": "1h",
        "examples": list(markets.INTERVALS),
    },
    lambda raw, used: markets.interval(raw),
    default="1h",
    description="as the exchanges write it: 1m a minute, 1M a month, 1w from Monday; 1H is 1h",
)


class _MarketResource:
    auth_scope = "relay:out"

    def __init__(self, service: Markets):
        self._markets = service

    def _symbol(self, req) -> tuple[str, str]:
        """(exchange, symbol as the exchange writes it)."""
        query = req.context.query
        exchange, raw = query["exchange"], query["symbol"]
        try:
            return exchange, self._markets.markets[exchange].resolve(raw)
        except BadRequest:  # another exchange's shape: nothing held under it here
            raise NotFound(f"Not Found: no data for symbol {raw} on {exchange}") from None


class SymbolsResource(_MarketResource):
    """GET /relay-out/symbols?exchange=binance"""

    query = (EXCHANGE,)

    def on_get(self, req, resp):
        caching.send_body(resp, self._markets.symbols(req.context.query["exchange"]))


class PriceResource(_MarketResource):
    """GET /relay-out/price?symbol=ADAUSDT&exchange=binance"""

    query = (symbol_param(aliases=("currency",)), EXCHANGE)

    def on_get(self, req, resp):
        caching.send_body(resp, self._markets.price(*self._symbol(req)))


class ProfitResource(_MarketResource):
    """GET /relay-out/profit?value=1000&symbol=ADAUSDT&exchange=binance"""

    query = (VALUE, symbol_param(aliases=("currency",)), EXCHANGE)

    def on_get(self, req, resp):
        exchange, symbol = self._symbol(req)
        value = req.context.query["value"]
        caching.send_body(resp, self._markets.profit(exchange, symbol, value))


class CandlesResource(_MarketResource):
    """GET /relay-out/candles?symbol=BTCUSDT&interval=1h&start=&end=&exchange=binance"""

    query = (symbol_param(), INTERVAL, *params.START_END, EXCHANGE)

    def on_get(self, req, resp):
        exchange, symbol = self._symbol(req)
        query = req.context.query
        start, end = params.ordered(query["start"], query["end"])
        body = self._markets.candles(exchange, symbol, query["interval"], start, end)
        caching.send_body(resp, body)
