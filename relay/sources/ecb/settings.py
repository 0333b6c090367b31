"""The ECB's settings: ``ECB_*``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import ClassVar

from relay import env


@dataclasses.dataclass(frozen=True)
class Settings:
    PREFIX: ClassVar[str] = "ECB"

    url: str = "https://www.ecb.europa.eu/stats/eurofxref"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        return cls(url=env.url(environ, "ECB_URL", cls.url))
