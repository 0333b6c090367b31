"""Coinbase Exchange public market data: 1-minute candles and the ticker (no key).

``GET {COINBASE_URL}/products/{product_id}/candles?granularity=60&start=&end=`` answers
at most 300 rows ``[time, low, high, open, close, volume]``, newest first: ``time`` is
the bucket's start in Unix seconds, the figures are JSON numbers (every digit is kept),
``start`` and ``end`` (ISO 8601) are both inclusive, and a minute without trades is
absent. A range of more than 300 buckets is refused (400).

``GET {COINBASE_URL}/products/{product_id}/ticker`` answers ``{ask, bid, volume,
trade_id, price, size, time}``, figures as strings, ``time`` the last trade's.

Errors are ``{"message": "..."}``: 404 ``NotFound`` for an unknown product, 429 when the
public limit (10 requests a second per IP, bursts of 15) is passed.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from relay.errors import BadRequest, UpstreamError
from relay.sources.http import OutOfTime, UpstreamClient, json_body
from relay.sources.numbers import (
    each_row,
    exact_number,
    one_object,
    plain_text,
    plausible_time,
    whole_number,
)

log = logging.getLogger(__name__)

NAME = "Coinbase"
MINUTE = timedelta(minutes=1)
PAGE_MINUTES = 300  # Coinbase's most buckets a request
# 300 rows are about 30 KB; a ticker well under 1 KB.
MAX_ANSWER_BYTES = 512 * 1024
# /products lists every product with its increments: well under 1 MB today.
MAX_LISTING_BYTES = 4 * 1024 * 1024
# BTC-USD, ETH-USDT, 00-USD: base and quote currency codes.
PRODUCT = re.compile(r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$")


def quote_of(product: str) -> str:
    """The quote currency of a product: what follows the dash (BTC-USD -> USD)."""
    return product.rpartition("-")[2]


# The documented public limit: 10 requests a second per IP, in bursts of up to 15. Keep
# under it: requests arrive with jitter, and others may share the address.
RATE_PER_S = 10.0 * 0.9
BURST = 15 - 3


class Candle(NamedTuple):
    """One 1-minute candle, in the column order of ``coinbase_candle``."""

    open_time: datetime
    close_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


class Ticker(NamedTuple):
    symbol: str
    last_price: Decimal
    size: Decimal
    bid: Decimal
    ask: Decimal
    volume: Decimal
    trade_id: int
    traded_at: datetime


class Pace:
    """A token bucket: at most ``burst`` requests at once, refilled at ``rate`` a second.

    Shared by every request of one source, so a run stays inside the public limit
    instead of meeting 429s; a wait that would pass the deadline ends the run instead.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ):
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._at = clock()
        self._lock = threading.Lock()

    def take(self, deadline: float) -> None:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            wait = (1 - self._tokens) / self.rate if self._tokens < 1 else 0.0
            if wait and now + wait >= deadline:
                raise OutOfTime()
            self._tokens -= 1  # taken now, paid for by the wait below
        if wait:
            self._sleep(wait)


class CoinbaseSource:
    """Fetch candles and tickers, paced within the public rate limit."""

    def __init__(
        self,
        client: UpstreamClient,
        base_url: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.pace = Pace(RATE_PER_S, BURST, client.clock, sleep)

    def fetch_candles(
        self, product: str, start: datetime, end: datetime, *, deadline: float
    ) -> list[Candle]:
        """The 1-minute candles opening in [start, end] (both whole minutes), oldest first."""
        params = {"granularity": 60, "start": _iso(start), "end": _iso(end)}
        payload = self._get(f"/products/{product}/candles", params, product, deadline)
        return [c for c in parse_candles(payload) if start <= c.open_time <= end]

    def listed(self, *, deadline: float) -> list[tuple[str, str]]:
        """(product id, quote currency) of every product online and trading, from /products."""
        payload = self._get("/products", {}, "*", deadline, max_bytes=MAX_LISTING_BYTES)
        rows = each_row(payload, NAME, "product", _product)
        return sorted((pid, quote) for pid, quote, trading in rows if trading)

    def fetch_ticker(self, product: str, *, deadline: float) -> Ticker:
        payload = self._get(f"/products/{product}/ticker", {}, product, deadline)
        return parse_ticker(payload, product)

    def _get(
        self,
        path: str,
        params: dict,
        product: str,
        deadline: float,
        max_bytes: int = MAX_ANSWER_BYTES,
    ) -> Any:
        self.pace.take(deadline)
        resp = self.client.get(
            f"{self.base_url}{path}", params=params, deadline=deadline, max_bytes=max_bytes
        )
        if resp.status_code == 200:
            return json_body(resp, NAME)
        message = _message(resp)
        if resp.status_code == 404:
            raise BadRequest("Bad Request: Invalid Symbol", data={"symbol": product})
        detail = f" ({message[:200]})" if message else ""
        raise UpstreamError(f"Bad Gateway: {NAME} answered HTTP {resp.status_code}{detail}")


def _iso(when: datetime) -> str:
    """ISO 8601 in UTC with a Z, as Coinbase's own examples and clients write it."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _message(resp) -> str:
    try:
        return str(resp.json()["message"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_candles(payload: Any) -> list[Candle]:
    """Validate a candles answer; one bad row fails the whole page. Oldest first."""
    candles = each_row(payload, NAME, "candle", _candle)
    candles.sort(key=lambda candle: candle.open_time)
    return candles


def _candle(row: Any) -> Candle:
    if not isinstance(row, list) or len(row) < 6:
        raise ValueError("not a [time, low, high, open, close, volume] array")
    seconds = whole_number(row[0], "time")
    if seconds % 60:
        raise ValueError("time is not the start of a minute")
    open_time = plausible_time(_EPOCH + timedelta(seconds=seconds), "time")
    candle = Candle(
        open_time=open_time,
        close_time=open_time + MINUTE,
        low=exact_number(row[1], "low"),
        high=exact_number(row[2], "high"),
        open=exact_number(row[3], "open"),
        close=exact_number(row[4], "close"),
        volume=exact_number(row[5], "volume"),
    )
    if candle.low > candle.high:
        raise ValueError("inconsistent prices")
    return candle


def _product(row: Any) -> tuple[str, str, bool]:
    product = plain_text(row["id"], "id", max_length=41)
    trading = (
        bool(PRODUCT.match(product))  # one relay cannot name is left out, not fatal
        and row.get("status") == "online"
        and not row.get("trading_disabled", False)
    )
    return product, plain_text(row["quote_currency"], "quote_currency", 20), trading


def parse_ticker(payload: Any, product: str) -> Ticker:
    return one_object(payload, NAME, "ticker", lambda fields: _ticker(fields, product))


def _ticker(payload: dict, product: str) -> Ticker:
    traded_at = datetime.fromisoformat(plain_text(payload["time"], "time", max_length=40))
    return Ticker(
        symbol=product,
        last_price=exact_number(payload["price"], "price"),
        size=exact_number(payload["size"], "size"),
        bid=exact_number(payload["bid"], "bid"),
        ask=exact_number(payload["ask"], "ask"),
        volume=exact_number(payload["volume"], "volume"),
        trade_id=whole_number(payload["trade_id"], "trade_id"),
        traded_at=plausible_time(traded_at, "time"),
    )
