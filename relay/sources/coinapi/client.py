"""CoinAPI trade history: symbols, requests and parsing into plain rows.

``GET {COINAPI_URL}/v1/trades/{symbol_id}/history?time_start=...&limit=...``
answers trades in ascending time order, ``time_start`` inclusive, each
``{symbol_id, time_exchange, time_coinapi, uuid, price, size, taker_side}``.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from relay.errors import BadRequest, UpstreamError
from relay.sources import symbols
from relay.sources.http import UpstreamClient, json_body
from relay.sources.numbers import VALUE_ERRORS, exact_number, plain_text, plausible_time

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
    ) -> list[Trade]:
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
        return parse_trades(json_body(resp, NAME), symbol_id)


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
