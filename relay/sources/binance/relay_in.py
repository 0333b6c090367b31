"""Binance's relay-in: 1-minute klines, then the 24-hour ticker."""

from __future__ import annotations

from datetime import datetime

from psycopg_pool import ConnectionPool

from relay import candles
from relay.ingest import PagedRelayIn, storing
from relay.sources.binance import client as binance
from relay.sources.binance import store as candle_store
from relay.sources.binance.client import NAME as BINANCE
from relay.sources.binance.client import BinanceSource
from relay.sources.binance.settings import Settings
from relay.sources.source import Market, Wiring

MARKET = Market(
    candles="binance_candle",
    ticker="binance_ticker",
    ticker_time="close_time",
    resolve=binance.resolve_symbol,
)


class BinanceRelayIn(PagedRelayIn):
    """Relay Binance 1-minute klines into ``binance_candle``, then the 24-hour ticker."""

    name = "binance"
    upstream = BINANCE
    concern = "candles"

    @classmethod
    def build(cls, settings: Settings, wiring: Wiring) -> BinanceRelayIn:
        source = BinanceSource(
            wiring.client(BINANCE),
            settings.url,
            weight_limit=settings.weight_limit,
            sleep=wiring.sleep,
            wall_clock=lambda: wiring.now().timestamp(),
        )
        return cls(
            wiring.pool,
            source,
            default_symbols=settings.symbols,
            backfill_hours=settings.backfill_hours,
            budget_s=wiring.budget_s,
            now=wiring.now,
            clock=wiring.clock,
        )

    def __init__(self, pool: ConnectionPool, source: BinanceSource, **kwargs):
        super().__init__(pool, **kwargs)
        self.source = source

    def resolve(self, symbol: str | None) -> str:
        return binance.resolve_symbol(symbol)

    def resume_point(self, conn, symbol: str) -> datetime | None:
        # Start at the newest stored minute: it may have been still open.
        return candles.newest_open_time(conn, MARKET, symbol)

    def fetch_page(self, symbol: str, start: datetime, deadline: float):
        return self.source.fetch_klines(symbol, start, deadline=deadline)

    def store_page(self, conn, symbol: str, page, stored_upto) -> int:
        # The newest stored minute comes again, maybe changed: it is upserted.
        return candles.store_minutes(conn, MARKET, symbol, page, self.now(), stored_upto)

    def page_upto(self, page) -> datetime:
        return max(kline.open_time for kline in page)

    def is_last_page(self, page) -> bool:
        return len(page) < self.source.page_limit

    def next_start(self, page) -> datetime:
        return max(kline.open_time for kline in page) + binance.MINUTE

    def finish_symbol(self, symbol: str, deadline: float) -> int:
        ticker = self.source.fetch_ticker(symbol, deadline=deadline)
        with storing(self.pool, self.upstream) as conn:
            candle_store.store_ticker(conn, ticker, self.now())
        return 0  # the ticker refreshes every run; only candles count as new rows
