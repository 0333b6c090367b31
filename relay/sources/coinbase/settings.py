"""Coinbase Exchange's settings: ``COINBASE_*`` (its public market data needs no key)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

from relay import env


@dataclasses.dataclass(frozen=True)
class Settings:
    PREFIX: ClassVar[str] = "COINBASE"

    url: str = "https://api.exchange.coinbase.com"
    products: tuple[str, ...] = ("BTC-USD", "ETH-USD")
    backfill_hours: int = 24

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            url=env.url(environ, "COINBASE_URL", cls.url),
            products=env.names(environ, "COINBASE_PRODUCTS", cls.products),
            backfill_hours=env.whole(
                environ, "COINBASE_BACKFILL_HOURS", cls.backfill_hours, 1, 24 * 365
            ),
        )
