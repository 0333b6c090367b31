"""Coinbase's relay-in: 1-minute candles window by window, then the ticker.

Coinbase pages by time, not by count: a request names a window of at most 300
minutes, and a window may hold fewer rows (minutes without trades are absent), so
the next window starts after this one's end, not after its last row.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from relay.candles import CandleRelayIn
from relay.sources.coinbase import store
from relay.sources.coinbase.client import (
    MINUTE,
    NAME,
    PAGE_MINUTES,
    PRODUCT,
    CoinbaseSource,
    quote_of,
)
from relay.sources.coinbase.settings import Settings
from relay.sources.minutes import Minutes
from relay.sources.source import Market, Wiring

MARKET = Market(
    candles="coinbase_candle",
    ticker="coinbase_ticker",
    ticker_time="traded_at",
    pattern=PRODUCT,
    quote=quote_of,
)


@dataclasses.dataclass(frozen=True)
class Window:
    """The candles Coinbase sent for the minutes [start, end], both included."""

    start: datetime
    end: datetime
    rows: Minutes

    def __bool__(self) -> bool:
        return bool(self.rows)


def floor_minute(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(second=0, microsecond=0)


class CoinbaseRelayIn(CandleRelayIn):
    """Relay Coinbase 1-minute candles into ``coinbase_candle``, then the ticker."""

    name = "coinbase"
    upstream = NAME
    market = MARKET

    @classmethod
    def build(cls, settings: Settings, wiring: Wiring) -> CoinbaseRelayIn:
        source = CoinbaseSource(wiring.client(NAME), settings.url, sleep=wiring.sleep)
        return cls.wired(
            wiring, source, symbols=settings.products, backfill_hours=settings.backfill_hours
        )

    def fetch_page(self, symbol: str, start: datetime, deadline: float) -> Window:
        start = floor_minute(start)
        end = max(start, min(start + (PAGE_MINUTES - 1) * MINUTE, floor_minute(self.now())))
        rows = self.source.fetch_candles(symbol, start, end, deadline=deadline)
        return Window(start, end, Minutes.of(rows))

    def rows(self, page: Window) -> Minutes:
        return page.rows

    def resume_point(self, conn, symbol: str) -> datetime | None:
        # The newest stored minute, or further if empty windows were walked since.
        points = [super().resume_point(conn, symbol), store.walked_to(conn, symbol)]
        return max((point for point in points if point is not None), default=None)

    def store_pages(self, conn, symbol: str, pages: list[Window], stored_upto) -> int:
        stored = super().store_pages(conn, symbol, pages, stored_upto)
        store.note_walked(conn, symbol, max(page.end for page in pages))
        return stored

    def is_last_page(self, page: Window) -> bool:
        return page.end >= floor_minute(self.now())

    def next_start(self, page: Window) -> datetime:
        return page.end + MINUTE

    def store_ticker(self, conn, ticker) -> None:
        store.store_ticker(conn, ticker, self.now())
