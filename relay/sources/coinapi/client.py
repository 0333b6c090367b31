"""CoinAPI trade history: symbols, requests and parsing into plain rows.

``GET {COINAPI_URL}/v1/trades/{symbol_id}/history?time_start=...&limit=...``
answers trades in ascending time order, ``time_start`` inclusive, each
``{symbol_id, time_exchange, time_coinapi, uuid, price, size, taker_side}``.
"""

from __future__ import annotations

import operator
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

import msgspec

from relay.db import copy_text
from relay.errors import BadRequest, UpstreamError
from relay.sources import symbols
from relay.sources.http import UpstreamClient, json_body
from relay.sources.numbers import (
    PLAIN_DIGITS,
    VALUE_ERRORS,
    exact_number,
    plain_text,
    plausible_time,
)

NAME = "CoinAPI"
# An asset code such as BTC, mapped through COINAPI_SYMBOL_TEMPLATE...
_ASSET_CODE = re.compile(r"^[A-Z0-9]{1,20}$")
# ...or a full symbol id: EXCHANGE_TYPE_BASE_QUOTE[_more], e.g. BITSTAMP_SPOT_BTC_USD.
_SYMBOL_ID = re.compile(r"^[A-Z0-9]{1,40}(?:_[A-Z0-9.\-]{1,40}){2,8}$")
SYMBOL = re.compile(f"{_ASSET_CODE.pattern}|{_SYMBOL_ID.pattern}")
# CoinAPI's documented answer for "no such item" besides 400.
_NO_DATA = 550
# A trade is about 230 bytes of JSON; a page may take 1 KiB a trade, and no more.
BYTES_PER_TRADE = 1024


class Trade(NamedTuple):
    """One trade, in the column order of the staging COPY."""

    uuid: uuid.UUID
    time_exchange: datetime
    time_coinapi: datetime
    price: Decimal
    size: Decimal
    taker_side: str


# Trade times as CoinAPI sends them (UTC, 100 ns digits), 1970..2199. A page in this form
# is read by the fast path; any other form (or an impossible date) takes parse_trades.
_TIME = (
    r"(?:19[7-9][0-9]|2[01][0-9][0-9])-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{6}"
)
_TIMES = re.compile(rf"(?:{_TIME}[0-9]{{0,3}}Z\n)*")
_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# One trade as a COPY line (times cut to PostgreSQL's microseconds): uuid, time_exchange,
# time_coinapi, price, size, taker_side. Nothing in it needs COPY escapes.
_LINES = re.compile(
    rf"(?:{_UUID}\t{_TIME}Z\t{_TIME}Z\t{PLAIN_DIGITS}\t{PLAIN_DIGITS}\t[A-Z_]{{1,20}}\n)*"
)
_DAY = operator.itemgetter(slice(0, 10))


class _Sent(msgspec.Struct):
    """A trade as decoded: its text as sent, numbers as their digits (checked after)."""

    uuid: str
    time_exchange: str
    time_coinapi: str
    price: Any
    size: Any
    taker_side: str
    symbol_id: str | None = None


# JSON numbers come out as the text of their digits (float_hook), never as floats.
_DECODE = msgspec.json.Decoder(list[_Sent], float_hook=str)


class TradePage:
    """A page of trades rendered once as COPY text lines, with what storing needs.

    ``lines`` hold each trade's fields (uuid, time_exchange, time_coinapi, price, size,
    taker_side) in COPY's text format; ``keys`` each trade's time_exchange as
    ``YYYY-MM-DDTHH:MM:SS.ffffff`` text, which sorts as the times do; ``uuids`` the ids
    in one spelling, so equal text is the same trade.
    """

    __slots__ = ("keys", "lines", "uuids")

    def __init__(self, lines: list[str], keys: list[str], uuids: list[str]):
        self.lines, self.keys, self.uuids = lines, keys, uuids

    @classmethod
    def of(cls, trades: Sequence[Trade]) -> TradePage:
        """Render parsed trades (Decimals print every digit they were parsed from)."""
        return cls(
            [
                f"{t.uuid}\t{t.time_exchange.isoformat()}\t{t.time_coinapi.isoformat()}"
                f"\t{t.price}\t{t.size}\t{copy_text(t.taker_side)}"
                for t in trades
            ],
            [time_key(t.time_exchange) for t in trades],
            [str(t.uuid) for t in trades],
        )

    def __len__(self) -> int:
        return len(self.lines)

    def unique(self) -> tuple[list[str], list[str]]:
        """Keys and lines with each uuid once (the last one sent, where it first came)."""
        if len(set(self.uuids)) == len(self.uuids):
            return self.keys, self.lines
        last = {u: i for i, u in enumerate(self.uuids)}
        first = dict.fromkeys(self.uuids)
        chosen = [last[u] for u in first]
        return [self.keys[i] for i in chosen], [self.lines[i] for i in chosen]

    def times(self) -> list[datetime]:
        """Every trade's time_exchange."""
        return [datetime.fromisoformat(key).replace(tzinfo=UTC) for key in self.keys]

    @property
    def since(self) -> datetime:
        """The oldest time_exchange in the page (the page must not be empty)."""
        return datetime.fromisoformat(min(self.keys)).replace(tzinfo=UTC)

    @property
    def upto(self) -> datetime:
        """The newest time_exchange in the page (the page must not be empty)."""
        return datetime.fromisoformat(max(self.keys)).replace(tzinfo=UTC)


def time_key(when: datetime) -> str:
    """A time as TradePage keys spell it (UTC, microseconds)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def resolve_symbol(text: str | None, template: str) -> str:
    """Map ``BTC`` through the template, or accept a full symbol id as it is.

    Raises BadRequest with the original Relay API's messages.
    """
    candidate = symbols.resolve(text, SYMBOL)
    return template.format(code=candidate) if _ASSET_CODE.match(candidate) else candidate


class CoinAPISource:
    """Fetch one page of trade history at a time."""

    def __init__(self, client: UpstreamClient, base_url: str, api_key: str, page_limit: int):
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.page_limit = page_limit

    def fetch_page(
        self, symbol_id: str, time_start: datetime, *, deadline: float | None = None
    ) -> TradePage:
        """Return up to ``page_limit`` trades at or after ``time_start``, oldest first."""
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["X-CoinAPI-Key"] = self.api_key
        resp = self.client.get(
            f"{self.base_url}/v1/trades/{symbol_id}/history",
            params={"time_start": format_time(time_start), "limit": self.page_limit},
            headers=headers,
            deadline=deadline,
            max_bytes=64 * 1024 + self.page_limit * BYTES_PER_TRADE,
        )
        if resp.status_code in (400, 404, _NO_DATA):
            raise BadRequest(
                "Bad Request: Invalid Symbol",
                data={"symbol": symbol_id, "upstream_status": resp.status_code},
            )
        if resp.status_code != 200:
            raise UpstreamError(
                f"Bad Gateway: {NAME} answered HTTP {resp.status_code}{_error_text(resp)}"
            )
        return read_trades(resp.content, symbol_id) or TradePage.of(
            parse_trades(json_body(resp, NAME), symbol_id)
        )


def format_time(when: datetime) -> str:
    """Format as CoinAPI's ISO 8601 (UTC, no offset suffix)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _error_text(resp) -> str:
    """CoinAPI errors are ``{"error": "..."}``; quote the text, never our key."""
    try:
        message = resp.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return f": {str(message)[:200]}" if message else ""


def read_trades(body: bytes, symbol_id: str) -> TradePage | None:
    """Read a history page in CoinAPI's usual form straight to COPY lines, every digit kept.

    Returns None when any part of the page is in another form: parse_trades then
    reads it, and either stores what it accepts or names what is wrong (a 502).
    Whatever this accepts, parse_trades accepts too and stores as the same values:
    numbers are plain digits (PLAIN_DIGITS, never negative), times are real UTC
    instants of 1970..2199 with at most 100 ns digits (cut to microseconds, as
    parse_trades does), uuids are in their one lowercase spelling, and the side is
    a short upper-case word. No Decimal, datetime or UUID is built per trade.
    """
    try:
        sent = _DECODE.decode(body)
    except (msgspec.MsgspecError, RecursionError):
        return None
    exchange = [t.time_exchange for t in sent]
    coinapi = [t.time_coinapi for t in sent]
    times = "\n".join([*exchange, *coinapi, ""])
    # A line end inside a value would pass for two values: the counts must agree.
    if times.count("\n") != 2 * len(sent) or not _TIMES.fullmatch(times):
        return None
    keys = [time[:26] for time in exchange]
    lines = [
        f"{t.uuid}\t{key}Z\t{t.time_coinapi[:26]}Z\t{t.price}\t{t.size}\t{t.taker_side}"
        for t, key in zip(sent, keys, strict=True)
    ]
    text = "\n".join([*lines, ""])
    if text.count("\n") != len(lines) or not _LINES.fullmatch(text):
        return None
    try:  # the pattern takes 02-30 and 02-29 of any year; the calendar does not
        for day in set(map(_DAY, exchange)) | set(map(_DAY, coinapi)):
            date.fromisoformat(day)
    except ValueError:
        return None
    if not {t.symbol_id for t in sent} <= {None, symbol_id}:
        return None
    return TradePage(lines, keys, [t.uuid for t in sent])


def parse_trades(payload: Any, symbol_id: str) -> list[Trade]:
    """Validate a history page and turn it into Trade rows.

    Any record of the wrong shape fails the whole page: storing part of a
    page would move the resume point past what we skipped.
    """
    if not isinstance(payload, list):
        raise UpstreamError(
            f"Bad Gateway: {NAME} sent a {type(payload).__name__}, not a list of trades"
        )
    trades = []
    for index, item in enumerate(payload):
        if not isinstance(item, dict):
            raise UpstreamError(f"Bad Gateway: {NAME} trade #{index} is not an object")
        try:
            trade = Trade(
                uuid=uuid.UUID(_str(item, "uuid")),
                time_exchange=parse_time(_str(item, "time_exchange")),
                time_coinapi=parse_time(_str(item, "time_coinapi")),
                price=_decimal(item, "price"),
                size=_decimal(item, "size"),
                taker_side=_str(item, "taker_side"),
            )
        except VALUE_ERRORS as exc:
            raise UpstreamError(f"Bad Gateway: {NAME} trade #{index} is malformed: {exc}") from exc
        other = item.get("symbol_id")
        if other is not None and other != symbol_id:
            raise UpstreamError(
                f"Bad Gateway: {NAME} sent a trade of {str(other)[:60]} for {symbol_id}"
            )
        trades.append(trade)
    return trades


def parse_time(text: str) -> datetime:
    """Parse CoinAPI's ``2022-01-01T00:00:01.1510000Z``.

    CoinAPI sends 100 ns digits; PostgreSQL keeps microseconds, so the
    seventh digit is dropped (rounded down, so resume points never skip).
    """
    return plausible_time(datetime.fromisoformat(text), "time")


def _str(item: dict, key: str) -> str:
    if key not in item:
        raise KeyError(f"missing {key!r}")
    return plain_text(item[key], repr(key), max_length=100)


def _decimal(item: dict, key: str) -> Decimal:
    if key not in item:
        raise KeyError(f"missing {key!r}")
    number = exact_number(item[key], repr(key))
    if number < 0:
        raise ValueError(f"{key!r} is negative")
    return number
