"""Binance spot klines and tickers: the source, declared once (see relay.sources.source)."""

from datetime import timedelta

from relay.sources.binance.relay_in import MARKET, BinanceRelayIn
from relay.sources.binance.settings import Settings
from relay.sources.source import Source

SOURCE = Source(
    relay_in=BinanceRelayIn,
    settings=Settings,
    overdue_after=timedelta(hours=2),
    cron="5 * * * *",
    market=MARKET,
)
