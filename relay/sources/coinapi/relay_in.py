"""CoinAPI's relay-in: trade history pages into ``symbol_data``."""

from __future__ import annotations

from datetime import datetime

from psycopg_pool import ConnectionPool

from relay.ingest import PagedRelayIn
from relay.sources.coinapi import store as trade_store
from relay.sources.coinapi.client import NAME as COINAPI
from relay.sources.coinapi.client import CoinAPISource, resolve_symbol
from relay.sources.coinapi.settings import Settings
from relay.sources.source import Wiring


class CoinAPIRelayIn(PagedRelayIn):
    """Relay CoinAPI trade history into ``symbol_data``."""

    name = "coinapi"
    upstream = COINAPI
    concern = "trades"

    @classmethod
    def build(cls, settings: Settings, wiring: Wiring) -> CoinAPIRelayIn:
        source = CoinAPISource(
            wiring.client(COINAPI), settings.url, settings.key, settings.page_limit
        )
        return cls.wired(
            wiring,
            source,
            symbols=settings.symbols,
            backfill_hours=settings.backfill_hours,
            symbol_template=settings.symbol_template,
        )

    def __init__(self, pool: ConnectionPool, source: CoinAPISource, *, symbol_template: str, **kw):
        super().__init__(pool, source, **kw)
        self.symbol_template = symbol_template

    def resolve(self, symbol: str | None) -> str:
        return resolve_symbol(symbol, self.symbol_template)

    def resume_point(self, conn, symbol: str) -> datetime | None:
        # Trades at that very instant come again and are skipped by uuid.
        return trade_store.newest_time(conn, symbol)

    def fetch_page(self, symbol: str, start: datetime, deadline: float):
        return self.source.fetch_page(symbol, start, deadline=deadline)

    def store_page(self, conn, symbol: str, page, stored_upto) -> int:
        return trade_store.store_page(conn, symbol, page, stored_upto)

    def page_upto(self, page) -> datetime:
        return page.upto

    def is_last_page(self, page) -> bool:
        return len(page) < self.source.page_limit

    def next_start(self, page) -> datetime:
        return self.page_upto(page)
