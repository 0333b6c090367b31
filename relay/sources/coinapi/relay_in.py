"""CoinAPI's relay-in: trade history pages into ``symbol_data``."""

from __future__ import annotations

from datetime import datetime, timedelta

from psycopg_pool import ConnectionPool

from relay import db, partitions
from relay.ingest import PagedRelayIn
from relay.notify import announce
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

    def __init__(
        self,
        pool: ConnectionPool,
        source: CoinAPISource,
        *,
        symbol_template: str,
        retain: timedelta | None = None,
        **kw,
    ):
        super().__init__(pool, source, **kw)
        self.symbol_template = symbol_template
        self.retain = retain  # trades older than this are dropped (a month at a time)
        self.partitions = partitions.Partitions(pool, trade_store.TABLE)

    @classmethod
    def wired(cls, wiring, source, **extra):
        return super().wired(wiring, source, retain=wiring.retain_trades, **extra)

    def prepare(self, page) -> None:
        if len(page):
            self.partitions.ensure(page.since, page.upto, each=page.times)

    def finish_run(self, caught_up, deadline: float, result) -> None:
        """Drop the months of trades retention no longer keeps."""
        if self.retain is None:
            return
        with db.connection(self.pool) as conn:
            dropped = partitions.prune(conn, trade_store.TABLE, self.retain, self.now())
            if dropped:
                announce(conn, self.concern)
        if dropped:
            self.partitions.forget()
            result.details["dropped"] = dropped

    def resolve(self, symbol: str | None) -> str:
        return resolve_symbol(symbol, self.symbol_template)

    def resume_point(self, conn, symbol: str) -> datetime | None:
        # Trades at that very instant come again and are skipped: a trade is
        # (symbol, time_exchange, uuid).
        return trade_store.newest_time(conn, symbol, upto=self.now())

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
