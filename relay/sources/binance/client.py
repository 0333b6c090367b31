"""Binance spot market data: 1-minute klines and the 24-hour ticker.

``GET {BINANCE_URL}/api/v3/klines?symbol=&interval=1m&startTime=&limit=1000``
answers 12-field arrays, oldest first::

    [openTime, "open", "high", "low", "close", "volume", closeTime,
     "quoteVolume", trades, "takerBuyBase", "takerBuyQuote", "ignore"]

``GET {BINANCE_URL}/api/v3/ticker/24hr?symbol=`` answers one object with
``lastPrice``, ``openTime``, ``closeTime`` and the rolling-window figures.
Errors are ``{"code": -1121, "msg": "Invalid symbol."}``.
"""

from __future__ import annotations

import json
import logging
import operator
import re
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import compress, repeat
from typing import Any, NamedTuple

import msgspec

from relay.errors import BadRequest, UpstreamError
from relay.sources.http import OutOfTime, Reply, UpstreamClient, json_body
from relay.sources.minutes import EPOCH, Minutes
from relay.sources.numbers import (
    LATEST,
    PLAIN_DIGITS,
    each_row,
    exact_number,
    one_object,
    plain_text,
    plausible_time,
    whole_number,
)

log = logging.getLogger(__name__)

NAME = "Binance"
PAGE_LIMIT = 1000
# A page of 1000 klines is about 170 KB; a ticker well under 1 KB.
MAX_ANSWER_BYTES = 2 * 1024 * 1024
MINUTE = timedelta(minutes=1)
SYMBOL = re.compile(r"^[A-Z0-9]{2,20}$")
# The quote assets Binance spot lists symbols in. A symbol carries no separator
# (BTCUSDT), so its quote is the one of these it ends with; where two fit (BTCAEUR is
# BTC in AEUR, ADAEUR is ADA in EUR) only Binance's exchangeInfo could tell: no quote
# is named rather than a wrong one.
QUOTE_ASSETS = frozenset({
    "USDT", "USDC", "FDUSD", "TUSD", "BUSD", "USDP", "DAI", "AEUR", "EURI", "BTC", "ETH", "BNB",
    "XRP", "TRX", "DOGE", "SOL", "DOT", "EUR", "GBP", "AUD", "BRL", "TRY", "ARS", "MXN", "PLN",
    "RON", "ZAR", "UAH", "COP", "CZK", "JPY", "RUB", "NGN", "IDRT", "BIDR",
})  # fmt: skip


def quote_of(symbol: str) -> str | None:
    """The quote asset of a Binance symbol (BTCUSDT -> USDT); None for an unknown or an
    ambiguous one."""
    fits = [symbol[-size:] for size in range(3, min(len(symbol) - 1, 5) + 1)]
    fits = [quote for quote in fits if quote in QUOTE_ASSETS]
    return fits[0] if len(fits) == 1 else None


_INVALID_SYMBOL = -1121
# Binance's published REQUEST_WEIGHT limit for /api/*, per IP and minute.
DEFAULT_WEIGHT_LIMIT = 6000
# Stop short of the limit: other clients on the same IP (or a retry) need room.
WEIGHT_HEADROOM = 0.8
# ticker/24hr weighs 2 for 1-20 symbols, 40 for 21-100, 80 beyond: 20 a request is cheapest.
TICKER_BATCH = 20
# exchangeInfo of the trading symbols, without permission sets: about 2-3 MB today.
MAX_LISTING_BYTES = 8 * 1024 * 1024


class Kline(NamedTuple):
    """One 1-minute candle, in the column order of the staging COPY."""

    open_time: datetime
    close_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int
    taker_buy_base: Decimal
    taker_buy_quote: Decimal


KLINE_COLUMNS = Kline._fields
MILLISECOND = timedelta(milliseconds=1)
_LATEST_MS = (LATEST - EPOCH) // MILLISECOND


class _Sent(msgspec.Struct, array_like=True):
    """A kline as decoded: times and trades as whole numbers, prices as their digit text."""

    open_time: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    close_time: int
    quote_volume: str
    trades: int
    taker_buy_base: str
    taker_buy_quote: str


_DECODE = msgspec.json.Decoder(list[_Sent])
_STRINGS = msgspec.json.Decoder(list[str])
# A kline as a COPY line: the two times (printed here from whole numbers, so only
# skipped), six numbers, the trade count, two numbers.
_LINES = re.compile(
    rf"(?:[^\t\n]++\t[^\t\n]++(?:\t{PLAIN_DIGITS}){{6}}\t[0-9]++(?:\t{PLAIN_DIGITS}){{2}}\n)*+"
)


class Ticker(NamedTuple):
    symbol: str
    last_price: Decimal
    open_price: Decimal
    high_price: Decimal
    low_price: Decimal
    volume: Decimal
    quote_volume: Decimal
    price_change: Decimal
    price_change_percent: Decimal
    open_time: datetime
    close_time: datetime
    trades: int


class BinanceSource:
    """Fetch klines and tickers, keeping below the request-weight budget."""

    def __init__(
        self,
        client: UpstreamClient,
        base_url: str,
        *,
        weight_limit: int = DEFAULT_WEIGHT_LIMIT,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.page_limit = PAGE_LIMIT
        self.weight_limit = weight_limit
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._used_weight = 0
        self._weight_minute = -1
        self._weight_lock = threading.Lock()  # symbols run concurrently on one budget

    def fetch_klines(self, symbol: str, start: datetime, *, deadline: float) -> Minutes:
        """Return up to 1000 one-minute klines opening at or after ``start``."""
        resp = self._answer(
            "/api/v3/klines",
            {
                "symbol": symbol,
                "interval": "1m",
                "startTime": to_millis(start),
                "limit": self.page_limit,
            },
            symbol,
            deadline,
        )
        return read_klines(resp.content) or Minutes.of(parse_klines(json_body(resp, NAME)))

    def fetch_ticker(self, symbol: str, *, deadline: float) -> Ticker:
        return parse_ticker(self._get("/api/v3/ticker/24hr", {"symbol": symbol}, symbol, deadline))

    def listed(self, *, deadline: float) -> list[tuple[str, str]]:
        """(symbol, quote asset) of every symbol in TRADING status, from exchangeInfo."""
        self._respect_weight(deadline)
        resp = self.client.get(
            f"{self.base_url}/api/v3/exchangeInfo",
            params={"symbolStatus": "TRADING", "showPermissionSets": "false"},
            deadline=deadline,
            max_bytes=MAX_LISTING_BYTES,
        )
        self._note_weight(resp.headers.get("X-MBX-USED-WEIGHT-1M"))
        if resp.status_code != 200:
            raise UpstreamError(
                f"Bad Gateway: {NAME} exchangeInfo answered HTTP {resp.status_code}"
            )
        payload = json_body(resp, NAME)
        if not isinstance(payload, dict):
            raise UpstreamError(f"Bad Gateway: {NAME} exchangeInfo is not an object")
        rows = each_row(payload.get("symbols"), NAME, "exchangeInfo symbol", _listing)
        return [(symbol, quote) for symbol, quote, status in rows if status == "TRADING"]

    def fetch_tickers(self, symbols: Sequence[str], *, deadline: float) -> list[Ticker]:
        """The 24-hour tickers of up to TICKER_BATCH symbols in one request (weight 2)."""
        wanted = json.dumps(list(symbols), separators=(",", ":"))
        payload = self._get("/api/v3/ticker/24hr", {"symbols": wanted}, wanted[:100], deadline)
        return each_row(payload, NAME, "ticker", _ticker)

    def _get(self, path: str, params: dict, symbol: str, deadline: float) -> Any:
        return json_body(self._answer(path, params, symbol, deadline), NAME)

    def _answer(self, path: str, params: dict, symbol: str, deadline: float) -> Reply:
        """A 200 answer; any other is a relay error."""
        self._respect_weight(deadline)
        resp = self.client.get(
            f"{self.base_url}{path}", params=params, deadline=deadline, max_bytes=MAX_ANSWER_BYTES
        )
        self._note_weight(resp.headers.get("X-MBX-USED-WEIGHT-1M"))
        if resp.status_code == 200:
            return resp
        code, message = _error(resp)
        if code == _INVALID_SYMBOL:
            raise BadRequest("Bad Request: Invalid Symbol", data={"symbol": symbol})
        if resp.status_code == 451:
            raise UpstreamError(
                f"Bad Gateway: {NAME} refuses requests from this server's region (HTTP 451); "
                "run the app in an EU region or set BINANCE_URL to a permitted host"
            )
        detail = f" (code {code}: {message[:200]})" if code is not None else ""
        raise UpstreamError(f"Bad Gateway: {NAME} answered HTTP {resp.status_code}{detail}")

    def _note_weight(self, header: str | None) -> None:
        try:
            used = int(header) if header is not None else None
        except ValueError:
            used = None
        if used is not None:
            minute = int(self._wall_clock() // 60)
            with self._weight_lock:
                self._used_weight, self._weight_minute = used, minute

    def _respect_weight(self, deadline: float) -> None:
        """Wait for the next minute when the last answer said the budget is nearly spent."""
        now = self._wall_clock()
        with self._weight_lock:
            minute, used = self._weight_minute, self._used_weight
        if int(now // 60) != minute:
            return  # Binance's window is the calendar minute: a new one starts afresh
        if used < self.weight_limit * WEIGHT_HEADROOM:
            return
        wait = 60 - now % 60 + 0.5
        if self.client.clock() + wait >= deadline:
            raise OutOfTime()
        log.info("binance: used weight %d, pausing %.1f s", used, wait)
        self._sleep(wait)


def _error(resp) -> tuple[int | None, str]:
    try:
        body = resp.json()
        return int(body["code"]), str(body.get("msg", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, ""


def to_millis(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def from_millis(value: Any) -> datetime:
    """Binance times are epoch milliseconds (numbers; some recorders write strings)."""
    millis = whole_number(value, "time")
    return plausible_time(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis), "time")


def read_klines(body: bytes) -> Minutes | None:
    """Read a klines page in Binance's usual form straight to COPY lines, every digit kept.

    Returns None when any part of the page is in another form: parse_klines then
    reads it, and either stores what it accepts or names what is wrong (a 502).
    Whatever this accepts, parse_klines accepts too and stores as the same values:
    prices and volumes are digit strings (PLAIN_DIGITS, or its negation), times and
    trade counts whole numbers, times within 1970..2199 and each kline closing after
    it opens, low at most high. No Decimal or datetime is built per field.
    """
    try:
        sent = _DECODE.decode(body)
    except (msgspec.MsgspecError, RecursionError):
        return None
    if not sent:
        return None
    opens = [k.open_time for k in sent]
    closes = [k.close_time for k in sent]
    trades = [k.trades for k in sent]
    if not (
        0 <= min(opens) <= max(opens) < _LATEST_MS
        and 0 <= min(closes) <= max(closes) < _LATEST_MS
        and 0 <= min(trades) <= max(trades) < 2**63
    ) or any(map(operator.le, closes, opens)):
        return None
    times = _utc_texts(opens + closes)
    lines = [
        f"{opened}\t{closed}\t{k.open}\t{k.high}\t{k.low}\t{k.close}\t{k.volume}"
        f"\t{k.quote_volume}\t{k.trades}\t{k.taker_buy_base}\t{k.taker_buy_quote}"
        for opened, closed, k in zip(times, times[len(sent) :], sent, strict=False)
    ]
    text = "\n".join([*lines, ""])
    # A line end inside a value would pass for two lines: the counts must agree.
    if text.count("\n") != len(lines) or not _LINES.fullmatch(text):
        return None
    lows, highs = [k.low for k in sent], [k.high for k in sent]
    if not _at_most(lows, highs):
        return None
    values = {"open": [k.open for k in sent], "high": highs, "low": lows,
              "close": [k.close for k in sent], "volume": [k.volume for k in sent]}  # fmt: skip
    return Minutes(KLINE_COLUMNS, lines, opens, MILLISECOND, values)


def _utc_texts(millis: list[int]) -> list[str]:
    """Epoch milliseconds (within 1970..2199) as ISO 8601 UTC text, no Python step per value.

    A float of seconds is within half a microsecond of the true instant there, and
    fromtimestamp rounds to the microsecond, so each time is exact. msgspec prints
    datetimes far faster than isoformat(), as JSON strings with nothing to unescape.
    """
    times = map(datetime.fromtimestamp, map(operator.truediv, millis, repeat(1000)), repeat(UTC))
    return _STRINGS.decode(msgspec.json.encode(list(times)))


def _at_most(lows: list[str], highs: list[str]) -> bool:
    """Whether each low is at most its high, as exact numbers (digit strings of PLAIN_DIGITS).

    Floats round monotonically, so unequal floats already decide; only equal floats of
    unequal text (1.0 and 1.00, or digits past a float's precision) are compared exactly.
    """
    low, high = list(map(float, lows)), list(map(float, highs))
    if any(map(operator.gt, low, high)):
        return False
    tied = map(operator.and_, map(operator.eq, low, high), map(operator.ne, lows, highs))
    return all(Decimal(lows[at]) <= Decimal(highs[at]) for at in compress(range(len(lows)), tied))


def parse_klines(payload: Any) -> list[Kline]:
    """Validate a klines page; one bad row fails the whole page."""
    return each_row(payload, NAME, "kline", _kline)


def _kline(row: Any) -> Kline:
    if not isinstance(row, list) or len(row) < 11:
        raise ValueError("not a 12-field kline array")
    open_time, close_time = from_millis(row[0]), from_millis(row[6])
    kline = Kline(
        open_time=open_time,
        close_time=close_time,
        open=exact_number(row[1], "open"),
        high=exact_number(row[2], "high"),
        low=exact_number(row[3], "low"),
        close=exact_number(row[4], "close"),
        volume=exact_number(row[5], "volume"),
        quote_volume=exact_number(row[7], "quoteVolume"),
        trades=whole_number(row[8], "trades"),
        taker_buy_base=exact_number(row[9], "takerBuyBase"),
        taker_buy_quote=exact_number(row[10], "takerBuyQuote"),
    )
    if close_time <= open_time or kline.low > kline.high:
        raise ValueError("inconsistent times or prices")
    return kline


def _listing(row: Any) -> tuple[str, str, str]:
    symbol = plain_text(row["symbol"], "symbol", max_length=40)
    status = str(row["status"])
    if not SYMBOL.match(symbol):  # Binance lists some (e.g. non-ASCII names) relay cannot take
        status = "UNSUPPORTED"
    return symbol, plain_text(row["quoteAsset"], "quoteAsset", 20), status


def parse_ticker(payload: Any) -> Ticker:
    return one_object(payload, NAME, "ticker", _ticker)


def _ticker(payload: dict) -> Ticker:
    return Ticker(
        symbol=plain_text(payload["symbol"], "symbol", max_length=40),
        last_price=exact_number(payload["lastPrice"], "lastPrice"),
        open_price=exact_number(payload["openPrice"], "openPrice"),
        high_price=exact_number(payload["highPrice"], "highPrice"),
        low_price=exact_number(payload["lowPrice"], "lowPrice"),
        volume=exact_number(payload["volume"], "volume"),
        quote_volume=exact_number(payload["quoteVolume"], "quoteVolume"),
        price_change=exact_number(payload["priceChange"], "priceChange"),
        price_change_percent=exact_number(payload["priceChangePercent"], "priceChangePercent"),
        open_time=from_millis(payload["openTime"]),
        close_time=from_millis(payload["closeTime"]),
        trades=whole_number(payload["count"], "count"),
    )
