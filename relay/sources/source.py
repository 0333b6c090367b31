"""What every source declares once, and what the app hands each one to build its relay-in.

A source is one package under ``relay/sources/``: its client (fetch and parse), its
store (SQL), its relay-in and its settings. The package's ``SOURCE`` says the rest once:
how long until ``/health`` calls it overdue, when the clock fires it, and, for an
exchange, where its candles and tickers are read from. ``relay.sources.registry`` lists
them; the app, the configuration, ``/health``, the OpenAPI document, the change concerns
and the clock's jobs are built by looping over that list.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from psycopg_pool import ConnectionPool

from relay.sources import symbols
from relay.sources.http import UpstreamClient


class Settings(Protocol):
    """A source's own settings: a frozen dataclass read from ``<PREFIX>_<FIELD>`` variables."""

    PREFIX: ClassVar[str]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings: ...


@dataclasses.dataclass(frozen=True)
class Wiring:
    """What the app gives every relay-in: the pool, upstream clients, the clocks, the budget."""

    pool: ConnectionPool
    client: Callable[[str], UpstreamClient]  # an upstream client named for messages
    budget_s: float
    now: Callable[[], datetime]
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    uuidgen: Callable[[], uuid.UUID]
    concurrency: int = 1  # symbols a relay-in works on at once
    retain_candles_1m: timedelta | None = None  # older raw minutes are removed
    retain_trades: timedelta | None = None  # older trades are removed


@dataclasses.dataclass(frozen=True)
class Market:
    """Where an exchange's 1-minute candles and latest tickers are read from.

    Table and column names are identifiers fixed here, never taken from a request.
    """

    candles: str  # (symbol, open_time, close_time, open, high, low, close, volume, fetched_at)
    ticker: str  # one row per symbol: (symbol, last_price, <ticker_time>)
    ticker_time: str  # the ticker's own time (the last trade's)
    # what a symbol looks like, upper-cased (callers may write it in any case)
    pattern: re.Pattern[str] = dataclasses.field(compare=False)
    # the currency a symbol's prices are in (BTCUSDT -> USDT), None when it cannot tell
    quote: Callable[[str], str | None] = dataclasses.field(
        compare=False, default=lambda symbol: None
    )

    def resolve(self, text: str | None) -> str:
        """A symbol as callers write it, normalized; BadRequest when malformed."""
        return symbols.resolve(text, self.pattern)


@dataclasses.dataclass(frozen=True)
class Source:
    """One upstream, declared once."""

    relay_in: Any  # its relay-in class: name, concern, takes_symbols, build(settings, wiring)
    settings: type  # its Settings dataclass
    overdue_after: timedelta  # /health calls it overdue after this long without success
    cron: str  # when the clock fires it by default (UTC)
    market: Market | None = None  # an exchange whose prices and candles relay-out serves
    # the variable holding its API key, when its upstream refuses callers without one
    key_variable: str | None = None

    @property
    def name(self) -> str:
        return self.relay_in.name

    @property
    def concern(self) -> str:
        return self.relay_in.concern

    @property
    def takes_symbols(self) -> bool:
        return self.relay_in.takes_symbols
