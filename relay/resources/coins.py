"""Relay-out routes for the dashboard, coin search and logos."""

from __future__ import annotations

import falcon

from relay import caching, params
from relay.changes import AnswerCache
from relay.coins import SYMBOL, Coins, servable
from relay.errors import BadRequest
from relay.sources.cmc.store import DASHBOARD_ORDER

MAX_IDS = 200


class DashboardResource:
    """GET /relay-out/dashboard?id=all&date=&order_by=price&order_type=desc&limit=&offset="""

    auth_scope = "relay:out"

    def __init__(self, coins: Coins, cache: AnswerCache):
        self._coins = coins
        self._cache = cache

    def on_get(self, req, resp):
        ids = params.text(req, "id") or "all"
        symbols = None
        if ids.lower() != "all":
            symbols = [s.strip() for s in ids.split(",") if s.strip()]
            if not symbols or len(symbols) > MAX_IDS or not all(SYMBOL.match(s) for s in symbols):
                raise BadRequest(
                    "Bad Request: id parameter must be all or a comma-separated list of symbols"
                )
        day = params.day(req, "date")
        order_by = params.text(req, "order_by") or "market_cap"
        if order_by not in DASHBOARD_ORDER:
            raise BadRequest(
                "Bad Request: order_by parameter must be one of " + ", ".join(DASHBOARD_ORDER)
            )
        order_type = (params.text(req, "order_type") or "desc").lower()
        if order_type not in ("asc", "desc"):
            raise BadRequest("Bad Request: order_type parameter must be asc or desc")
        limit = params.integer(req, "limit", default=100, low=1, high=5000)
        offset = params.integer(req, "offset", default=0, low=0, high=1_000_000)
        descending = order_type == "desc"
        # The store matches symbols without case and in no order.
        wanted = tuple(sorted({s.upper() for s in symbols})) if symbols else None
        body = self._cache.get(
            "coins",
            ("dashboard", day, wanted, order_by, descending, limit, offset),
            lambda: caching.ok_body(
                self._coins.dashboard(day, symbols, order_by, descending, limit, offset)
            ),
        )
        if body is None:
            resp.status = falcon.HTTP_204
            return
        caching.send_body(resp, body)


class SearchResource:
    """GET /relay-out/search?name=btc"""

    auth_scope = "relay:out"

    def __init__(self, coins: Coins, cache: AnswerCache):
        self._coins = coins
        self._cache = cache

    def on_get(self, req, resp):
        text = params.text(req, "name", required=True).lower()  # the store matches without case
        body = self._cache.get("coins", ("search", text), lambda: self._search(text))
        if body is None:
            resp.status = falcon.HTTP_204
            return
        caching.send_body(resp, body)

    def _search(self, text: str) -> bytes | None:
        results = self._coins.search(text)
        return caching.ok_body({"results": results} if results else None)


class LogoResource:
    """GET /relay-out/assets/{symbol}/logo: the image, cacheable for a day by the caller."""

    auth_scope = "relay:out"

    def __init__(self, coins: Coins):
        self._coins = coins

    def on_get(self, req, resp, symbol):
        if not servable(symbol):
            raise BadRequest("Bad Request: symbol is not a valid symbol")
        content_type, data, _ = self._coins.logo(symbol)
        caching.send(
            req, resp, data, content_type=content_type, cache_control="private, max-age=86400"
        )
