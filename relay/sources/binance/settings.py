"""Binance's settings: ``BINANCE_*``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

from relay import env


@dataclasses.dataclass(frozen=True)
class Settings:
    PREFIX: ClassVar[str] = "BINANCE"

    url: str = "https://api.binance.com"
    symbols: tuple[str, ...] = ("ADABTC", "ADAUSDT", "BTCUSDT")
    backfill_hours: int = 48
    # Binance's published REQUEST_WEIGHT limit for /api/*, per IP and minute
    weight_limit: int = 6000

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            url=env.url(environ, "BINANCE_URL", cls.url),
            symbols=env.names(environ, "BINANCE_SYMBOLS", cls.symbols),
            backfill_hours=env.whole(
                environ, "BINANCE_BACKFILL_HOURS", cls.backfill_hours, 1, 24 * 365
            ),
            weight_limit=env.whole(
                environ, "BINANCE_WEIGHT_LIMIT", cls.weight_limit, 10, 1_000_000
            ),
        )
