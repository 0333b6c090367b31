"""Relay-out routes for CoinAPI trade records."""

from __future__ import annotations

from relay import caching, params
from relay.errors import BadRequest
from relay.sources import symbols
from relay.sources.coinapi.client import SYMBOL, resolve_symbol
from relay.trades import Trades, decode_cursor

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000


def _symbol(raw: str, used: str) -> str:
    if not raw.isascii() or not SYMBOL.match(raw.upper()):
        raise BadRequest("Bad Request: Invalid Symbol", data={"symbol": raw[:100]})
    return raw


def _cursor(raw: str, used: str):
    return decode_cursor(raw, used)


class RecordsResource:
    """GET trades newest first with keyset pagination.

    Serves both ``/relay-out?Symbol=BTC`` (the original contract) and
    ``/relay-out/records?symbol=BTC``: ``symbol`` everywhere, ``Symbol`` its alias.
    """

    auth_scope = "relay:out"
    query = (
        params.Param(
            "symbol",
            # checked by resolve_symbol, in the original API's words (Invalid Symbol)
            {"type": "string", "pattern": symbols.any_case(SYMBOL)},
            _symbol,
            required=True,
            aliases=("Symbol",),
            missing="Bad Request: Check Symbol Parameter",
            description="an asset code (BTC) or a CoinAPI symbol id, in any case",
            example="BTC",
        ),
        *params.START_END,
        params.whole_param("limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT),
        params.Param(
            "cursor",
            {"type": "string", "maxLength": params.MAX_PARAM_LENGTH},
            _cursor,
            description="next_cursor of the previous page",
        ),
    )

    def __init__(self, trades: Trades, symbol_template: str):
        self._trades = trades
        self._template = symbol_template

    def on_get(self, req, resp):
        query = req.context.query
        symbol_id = resolve_symbol(query["symbol"], self._template)
        start, end = params.ordered(query["start"], query["end"])
        body = self._trades.page(
            symbol_id, start=start, end=end, after=query["cursor"], limit=query["limit"]
        )
        caching.send_body(resp, body)
