"""The dashboard, coin search and logos, read from what the CoinMarketCap relay stores."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from relay import caching
from relay.changes import AnswerCache
from relay.errors import NotFound
from relay.reads import Reads
from relay.sources.cmc import store as coin_store

SEARCH_LIMIT = 20
LOGO_ROUTE = "/relay-api/v1/relay-out/coins/{coin_id}/logo"
# The symbols the logo route (and a dashboard's id list) take.
SYMBOL = re.compile(r"^[A-Za-z0-9$._-]{1,50}$")


def servable(symbol: str) -> bool:
    """Whether the logo route can be asked for ``symbol`` (URLs resolve . and .. away)."""
    return bool(SYMBOL.match(symbol)) and symbol not in (".", "..")


def logo_url(coin_id: int, has_logo: bool) -> str | None:
    """The path of a coin's own logo; None when it has none.

    By relay's id, not by symbol: symbols come from upstream, are shared by several coins
    (the symbol route gives the best-ranked one's logo), and may be anything at all.
    """
    return LOGO_ROUTE.format(coin_id=int(coin_id)) if has_logo else None


class Coins:
    """The coin answers, each serialized once and cached until a snapshot changes them."""

    CONCERN = "coins"

    def __init__(self, reads: Reads, cache: AnswerCache):
        self._reads = reads
        self._cache = cache

    def dashboard_page(
        self,
        day: date | None,
        symbols: Sequence[str] | None,
        order_by: str,
        descending: bool,
        limit: int,
        offset: int,
        coins: Sequence[int] | None = None,
    ) -> bytes | None:
        """The 200 body of a dashboard page; None when there is nothing to show (204).

        ``symbols`` (the best-ranked coin of each) or ``coins`` (relay's ids) narrow it.
        """
        # The store matches symbols without case and in no order.
        wanted = tuple(sorted({s.upper() for s in symbols})) if symbols else None
        chosen = tuple(sorted(set(coins))) if coins else None
        return self._cache.get(
            self.CONCERN,
            ("dashboard", day, wanted, chosen, order_by, descending, limit, offset),
            lambda: caching.ok_body(
                self._dashboard(day, symbols, order_by, descending, limit, offset, chosen)
            ),
        )

    def search_page(self, text: str) -> bytes | None:
        """The 200 body of a search (the store matches without case); None: no match."""
        text = text.lower()

        def compute() -> bytes | None:
            results = self._search(text)
            return caching.ok_body({"results": results} if results else None)

        return self._cache.get(self.CONCERN, ("search", text), compute)

    def _dashboard(self, day, symbols, order_by, descending, limit, offset, coins) -> dict | None:
        """The ranked table for ``day`` (default: the latest we hold); None when empty.

        Arguments as dashboard_page's.
        """
        with self._reads.connection(self.CONCERN) as conn:
            day, total, rows = coin_store.dashboard(
                conn, day, symbols, order_by, descending, limit, offset, coins=coins
            )
        if not rows:
            return None
        for row in rows:
            row["logo"] = logo_url(row["id"], row.pop("has_logo"))
        return {"date": day, "total": total, "rows": rows}

    def _search(self, text: str) -> list[dict]:
        with self._reads.connection(self.CONCERN) as conn:
            hits = coin_store.search(conn, text, SEARCH_LIMIT)
        for hit in hits:
            hit["logo"] = logo_url(hit["id"], hit.pop("has_logo"))
        return hits

    def logo(self, symbol: str) -> tuple[str, bytes, bytes]:
        """The logo of the best-ranked coin with ``symbol``: content type, bytes, sha256."""
        return self._logo(coin_store.logo_by_symbol, symbol, symbol)

    def coin_logo(self, coin_id: int) -> tuple[str, bytes, bytes]:
        """The logo of the coin relay knows by ``coin_id`` (a dashboard row's id)."""
        return self._logo(coin_store.logo_by_coin, coin_id, f"coin {coin_id}")

    def _logo(self, lookup, key, named: str) -> tuple[str, bytes, bytes]:
        with self._reads.connection(self.CONCERN) as conn:
            found = lookup(conn, key)
        if found is None:
            raise NotFound(f"Not Found: no logo for {named}")
        content_type, data, sha256 = found
        return content_type, bytes(data), bytes(sha256)
