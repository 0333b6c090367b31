"""The ECB's euro reference rates: the source, declared once (see relay.sources.source)."""

from datetime import timedelta

from relay.sources.ecb.relay_in import ECBRelayIn
from relay.sources.ecb.settings import Settings
from relay.sources.source import Source

SOURCE = Source(
    relay_in=ECBRelayIn,
    settings=Settings,
    overdue_after=timedelta(days=2),
    cron="0 17 * * *",
)
