"""CoinMarketCap listings and logos: the source, declared once (see relay.sources.source)."""

from datetime import timedelta

from relay.sources.cmc.relay_in import CMCRelayIn
from relay.sources.cmc.settings import Settings
from relay.sources.source import Source

SOURCE = Source(
    relay_in=CMCRelayIn,
    settings=Settings,
    key_variable="CMC_API_KEY",
    overdue_after=timedelta(hours=2),
    cron="10 * * * *",
)
