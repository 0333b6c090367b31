"""Relay-out routes for the dashboard, coin search and logos."""

from __future__ import annotations

import re

import falcon

from relay import caching, params
from relay.coins import SYMBOL, Coins, servable
from relay.errors import BadRequest
from relay.sources.cmc.store import DASHBOARD_ORDER

MAX_IDS = 200
# all, or a comma-separated list of up to MAX_IDS coin symbols
_IDS = re.compile(
    rf"^([Aa][Ll][Ll]|{SYMBOL.pattern[1:-1]}( *, *{SYMBOL.pattern[1:-1]}){{0,{MAX_IDS - 1}}})$"
)


MAX_COINS = 20
_COINS = re.compile(rf"^[1-9][0-9]{{0,18}}( *, *[1-9][0-9]{{0,18}}){{0,{MAX_COINS - 1}}}$")


def _coins(raw: str, used: str) -> list[int]:
    if not _COINS.match(raw) or any(int(c) > MAX_COIN_ID for c in raw.split(",")):
        raise BadRequest(
            f"Bad Request: {used} parameter must be a comma-separated list of up to "
            f"{MAX_COINS} coin ids (a dashboard or search row's id)"
        )
    return sorted({int(c) for c in raw.split(",")})


def _ids(raw: str, used: str) -> list[str] | None:
    if raw.lower() == "all":
        return None
    symbols = [s.strip() for s in raw.split(",") if s.strip()]
    if not _IDS.match(raw) or len(symbols) > MAX_IDS:
        raise BadRequest(
            f"Bad Request: {used} parameter must be all or a comma-separated list of symbols"
        )
    return symbols


class DashboardResource:
    """GET /relay-out/dashboard?id=all&date=&order_by=price&order_type=desc&limit=&offset="""

    auth_scope = "relay:out"
    query = (
        params.Param(
            "id",
            {"type": "string", "pattern": _IDS.pattern, "default": "all"},
            _ids,
            description="all, or comma-separated symbols",
            example="all",
        ),
        params.Param(
            "coin",
            {"type": "string", "pattern": _COINS.pattern},
            _coins,
            description="instead of id: comma-separated coin ids (a row's id), one coin each",
            example="1",
        ),
        params.date_param("date", description="default: the latest day held"),
        params.choice_param("order_by", DASHBOARD_ORDER, default="market_cap"),
        params.choice_param("order_type", ("asc", "desc"), default="desc"),
        params.whole_param("limit", default=100, low=1, high=5000),
        params.whole_param("offset", default=0, low=0, high=1_000_000),
    )

    def __init__(self, coins: Coins):
        self._coins = coins

    def on_get(self, req, resp):
        query = req.context.query
        symbols, coins, day, order_by = query["id"], query["coin"], query["date"], query["order_by"]
        if symbols and coins:
            raise BadRequest("Bad Request: give symbols (id) or coin ids (coin), not both")
        limit, offset = query["limit"], query["offset"]
        descending = query["order_type"] == "desc"
        body = self._coins.dashboard_page(
            day, symbols, order_by, descending, limit, offset, coins=coins
        )
        if body is None:
            resp.status = falcon.HTTP_204
            return
        caching.send_body(resp, body)


class SearchResource:
    """GET /relay-out/search?name=btc"""

    auth_scope = "relay:out"
    query = (params.text_param("name", required=True, example="bit"),)

    def __init__(self, coins: Coins):
        self._coins = coins

    def on_get(self, req, resp):
        body = self._coins.search_page(req.context.query["name"])
        if body is None:
            resp.status = falcon.HTTP_204
            return
        caching.send_body(resp, body)


MAX_COIN_ID = 2**63 - 1  # relay's coin ids are PostgreSQL bigints


class _Logo:
    """A logo route: the image, cacheable for a day by the caller, its stored digest the ETag."""

    auth_scope = "relay:out"
    query = ()

    def __init__(self, coins: Coins):
        self._coins = coins

    @staticmethod
    def _send(req, resp, found: tuple[str, bytes, bytes]) -> None:
        content_type, data, sha256 = found
        caching.send(req, resp, data, content_type=content_type,
                     cache_control="private, max-age=86400", sha256=sha256)  # fmt: skip


class CoinLogoResource(_Logo):
    """GET /relay-out/coins/{coin_id}/logo: a coin's own logo (the path answers give)."""

    def on_get(self, req, resp, coin_id):
        if not (
            coin_id.isascii() and coin_id.isdigit() and len(coin_id) <= 19
            and 1 <= int(coin_id) <= MAX_COIN_ID
        ):  # fmt: skip
            raise BadRequest("Bad Request: coin id must be a whole number from 1")
        self._send(req, resp, self._coins.coin_logo(int(coin_id)))


class LogoResource(_Logo):
    """GET /relay-out/assets/{symbol}/logo: the best-ranked coin with that symbol's logo."""

    def on_get(self, req, resp, symbol):
        if not servable(symbol):
            raise BadRequest("Bad Request: symbol is not a valid symbol")
        self._send(req, resp, self._coins.logo(symbol))
