"""Binance's relay-in: 1-minute klines, then the 24-hour ticker."""

from __future__ import annotations

from datetime import datetime

from relay.candles import CandleRelayIn
from relay.sources.binance import client as binance
from relay.sources.binance import store
from relay.sources.binance.client import NAME as BINANCE
from relay.sources.binance.client import BinanceSource
from relay.sources.binance.settings import Settings
from relay.sources.source import Market, Wiring

MARKET = Market(
    candles="binance_candle",
    ticker="binance_ticker",
    ticker_time="close_time",
    pattern=binance.SYMBOL,
    quote=binance.quote_of,
)


class BinanceRelayIn(CandleRelayIn):
    """Relay Binance 1-minute klines into ``binance_candle``, then the 24-hour ticker."""

    name = "binance"
    upstream = BINANCE
    market = MARKET
    ticker_batch = binance.TICKER_BATCH

    @classmethod
    def build(cls, settings: Settings, wiring: Wiring) -> BinanceRelayIn:
        source = BinanceSource(
            wiring.client(BINANCE),
            settings.url,
            weight_limit=settings.weight_limit,
            sleep=wiring.sleep,
            wall_clock=lambda: wiring.now().timestamp(),
        )
        return cls.wired(
            wiring, source, symbols=settings.symbols, backfill_hours=settings.backfill_hours
        )

    def fetch_page(self, symbol: str, start: datetime, deadline: float):
        return self.source.fetch_klines(symbol, start, deadline=deadline)

    def page_upto(self, page) -> datetime:
        return page.upto

    def is_last_page(self, page) -> bool:
        return len(page) < self.source.page_limit

    def next_start(self, page) -> datetime:
        return self.page_upto(page) + binance.MINUTE

    def store_ticker(self, conn, ticker) -> None:
        store.store_ticker(conn, ticker, self.now())
