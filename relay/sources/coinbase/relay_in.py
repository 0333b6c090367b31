"""Coinbase's relay-in: 1-minute candles window by window, then the ticker.

Coinbase pages by time, not by count: a request names a window of at most 300
minutes, and a window may hold fewer rows (minutes without trades are absent), so
the next window starts after this one's end, not after its last row.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from psycopg_pool import ConnectionPool

from relay import candles
from relay.ingest import PagedRelayIn, storing
from relay.sources.coinbase import store
from relay.sources.coinbase.client import (
    MINUTE,
    NAME,
    PAGE_MINUTES,
    Candle,
    CoinbaseSource,
    resolve_product,
)
from relay.sources.coinbase.settings import Settings
from relay.sources.source import Market, Wiring

MARKET = Market(
    candles="coinbase_candle",
    ticker="coinbase_ticker",
    ticker_time="traded_at",
    resolve=resolve_product,
)


@dataclasses.dataclass(frozen=True)
class Window:
    """The candles Coinbase sent for the minutes [start, end], both included."""

    start: datetime
    end: datetime
    rows: list[Candle]

    def __bool__(self) -> bool:
        return bool(self.rows)


def floor_minute(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(second=0, microsecond=0)


class CoinbaseRelayIn(PagedRelayIn):
    """Relay Coinbase 1-minute candles into ``coinbase_candle``, then the ticker."""

    name = "coinbase"
    upstream = NAME
    concern = "candles"

    @classmethod
    def build(cls, settings: Settings, wiring: Wiring) -> CoinbaseRelayIn:
        source = CoinbaseSource(wiring.client(NAME), settings.url, sleep=wiring.sleep)
        return cls(
            wiring.pool,
            source,
            default_symbols=settings.products,
            backfill_hours=settings.backfill_hours,
            budget_s=wiring.budget_s,
            now=wiring.now,
            clock=wiring.clock,
        )

    def __init__(self, pool: ConnectionPool, source: CoinbaseSource, **kwargs):
        super().__init__(pool, **kwargs)
        self.source = source

    def resolve(self, symbol: str | None) -> str:
        return resolve_product(symbol)

    def resume_point(self, conn, symbol: str) -> datetime | None:
        # Start at the newest stored minute: it may have been still open.
        return candles.newest_open_time(conn, MARKET, symbol)

    def fetch_page(self, symbol: str, start: datetime, deadline: float) -> Window:
        start = floor_minute(start)
        end = max(start, min(start + (PAGE_MINUTES - 1) * MINUTE, floor_minute(self.now())))
        rows = self.source.fetch_candles(symbol, start, end, deadline=deadline)
        return Window(start, end, rows)

    def store_page(self, conn, symbol: str, page: Window, stored_upto) -> int:
        return candles.store_minutes(conn, MARKET, symbol, page.rows, self.now(), stored_upto)

    def page_upto(self, page: Window) -> datetime:
        return max(candle.open_time for candle in page.rows)

    def is_last_page(self, page: Window) -> bool:
        return page.end >= floor_minute(self.now())

    def next_start(self, page: Window) -> datetime:
        return page.end + MINUTE

    def finish_symbol(self, symbol: str, deadline: float) -> int:
        ticker = self.source.fetch_ticker(symbol, deadline=deadline)
        with storing(self.pool, self.upstream) as conn:
            store.store_ticker(conn, ticker, self.now())
        return 0  # the ticker refreshes every run; only candles count as new rows
