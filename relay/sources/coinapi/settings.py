"""CoinAPI's settings: ``COINAPI_*``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

from relay import env
from relay.env import ConfigError


@dataclasses.dataclass(frozen=True)
class Settings:
    PREFIX: ClassVar[str] = "COINAPI"

    url: str = "https://rest.coinapi.io"
    key: str = ""
    # an asset code such as BTC becomes this symbol id
    symbol_template: str = "BITSTAMP_SPOT_{code}_USD"
    symbols: tuple[str, ...] = ("BTC",)
    backfill_hours: int = 24
    page_limit: int = 1000

    def __post_init__(self):
        if "{code}" not in self.symbol_template:
            raise ConfigError("COINAPI_SYMBOL_TEMPLATE must contain '{code}'")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            url=env.url(environ, "COINAPI_URL", cls.url),
            key=environ.get("COINAPI_KEY", ""),
            symbol_template=environ.get("COINAPI_SYMBOL_TEMPLATE", cls.symbol_template),
            symbols=env.names(environ, "COINAPI_SYMBOLS", cls.symbols),
            backfill_hours=env.whole(
                environ, "COINAPI_BACKFILL_HOURS", cls.backfill_hours, 1, 24 * 365
            ),
            page_limit=env.whole(environ, "COINAPI_PAGE_LIMIT", cls.page_limit, 2, 100_000),
        )
