"""Relay-out routes for CoinAPI trade records."""

from __future__ import annotations

from relay import caching, params
from relay.changes import AnswerCache
from relay.errors import NotFound
from relay.sources.coinapi import store as trades
from relay.sources.coinapi.client import resolve_symbol

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000


class RecordsResource:
    """GET trades newest first with keyset pagination.

    Serves both ``/relay-out?Symbol=BTC`` (the original contract) and
    ``/relay-out/records?symbol=BTC``; only the parameter's name differs.
    """

    auth_scope = "relay:out"

    def __init__(
        self, pool, cache: AnswerCache, symbol_template: str, symbol_param: str = "symbol"
    ):
        self._pool = pool
        self._cache = cache
        self._template = symbol_template
        self._symbol_param = symbol_param

    def on_get(self, req, resp):
        symbol_id = resolve_symbol(params.text(req, self._symbol_param), self._template)
        start, end = params.time_range(req)
        limit = params.integer(req, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        cursor = params.text(req, "cursor")
        after = trades.decode_cursor(cursor) if cursor else None
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
