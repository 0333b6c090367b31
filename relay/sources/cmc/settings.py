"""CoinMarketCap's settings: ``CMC_*``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

from relay import env


@dataclasses.dataclass(frozen=True)
class Settings:
    PREFIX: ClassVar[str] = "CMC"

    url: str = "https://pro-api.coinmarketcap.com"
    api_key: str = ""
    limit: int = 200
    # where logos may be downloaded from: host or host:port entries
    logo_hosts: tuple[str, ...] = ("s2.coinmarketcap.com",)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            url=env.url(environ, "CMC_URL", cls.url),
            api_key=environ.get("CMC_API_KEY", ""),
            limit=env.whole(environ, "CMC_LIMIT", cls.limit, 1, 5000),
            logo_hosts=env.names(environ, "CMC_LOGO_HOSTS", cls.logo_hosts),
        )
