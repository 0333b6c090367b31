"""Relay-out routes for CoinAPI trade records."""

from __future__ import annotations

from relay import caching, params
from relay.changes import AnswerCache
from relay.errors import BadRequest, NotFound
from relay.sources.coinapi import store as trades
from relay.sources.coinapi.client import SYMBOL, resolve_symbol

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000


def _symbol(raw: str, used: str) -> str:
    if not SYMBOL.match(raw.upper()):
        raise BadRequest("Bad Request: Invalid Symbol", data={"symbol": raw[:100]})
    return raw


def _cursor(raw: str, used: str):
    return trades.decode_cursor(raw)


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
            {"type": "string", "pattern": SYMBOL.pattern.replace("A-Z", "A-Za-z")},
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

    def __init__(self, pool, cache: AnswerCache, symbol_template: str):
        self._pool = pool
        self._cache = cache
        self._template = symbol_template

    def on_get(self, req, resp):
        query = req.context.query
        symbol_id = resolve_symbol(query["symbol"], self._template)
        start, end = params.ordered(query["start"], query["end"])
        after, limit = query["cursor"], query["limit"]
        body = self._cache.get(
            "trades",
            ("records", symbol_id, start, end, after, limit),
            lambda: caching.ok_body(
                trades.records_page(
                    self._pool, symbol_id, start=start, end=end, after=after, limit=limit
                )
            ),
        )
        if body is None:
            raise NotFound(f"Not Found: no records for symbol {symbol_id}")
        caching.send_body(resp, body)
