"""CoinAPI trade history: the source, declared once (see relay.sources.source)."""

from datetime import timedelta

from relay.sources.coinapi.relay_in import CoinAPIRelayIn
from relay.sources.coinapi.settings import Settings
from relay.sources.source import Source

SOURCE = Source(
    relay_in=CoinAPIRelayIn,
    settings=Settings,
    key_variable="COINAPI_KEY",
    overdue_after=timedelta(minutes=30),
    cron="*/10 * * * *",
)
