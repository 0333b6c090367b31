"""Coinbase Exchange's public candles and tickers: the source, declared once."""

from datetime import timedelta

from relay.sources.coinbase.relay_in import MARKET, CoinbaseRelayIn
from relay.sources.coinbase.settings import Settings
from relay.sources.source import Source

SOURCE = Source(
    relay_in=CoinbaseRelayIn,
    settings=Settings,
    overdue_after=timedelta(hours=2),
    cron="15 * * * *",
    market=MARKET,
)
