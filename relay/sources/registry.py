"""Every source relay knows, in the order /health and the docs list them.

Adding a source is adding its package and one line here.
"""

from __future__ import annotations

from relay.sources import binance, cmc, coinapi, coinbase, ecb
from relay.sources.source import Source

SOURCES: tuple[Source, ...] = (
    coinapi.SOURCE,
    binance.SOURCE,
    cmc.SOURCE,
    ecb.SOURCE,
    coinbase.SOURCE,
)
BY_NAME: dict[str, Source] = {source.name: source for source in SOURCES}
# Exchanges whose candles, prices and profits relay-out serves, the first the default.
MARKETS: dict[str, Source] = {s.name: s for s in SOURCES if s.market is not None}
# What relay-out answers are cached by; a source's writes announce its concern.
CONCERNS: tuple[str, ...] = tuple(dict.fromkeys(source.concern for source in SOURCES))
