"""CoinMarketCap: the latest listings, coin info (logo URLs), and logo images.

``GET {CMC_URL}/v1/cryptocurrency/listings/latest?start=1&limit=&convert=USD``
answers ``{"status": {...,"error_code": 0}, "data": [coin, ...]}``, each coin
with ``id, name, symbol, slug, cmc_rank, last_updated`` and
``quote.USD.{price, volume_24h, market_cap, percent_change_1h/24h/7d/30d}``.
``GET /v2/cryptocurrency/info?id=1,2`` answers ``data`` keyed by id, each
with a ``logo`` URL. Both take the key in ``X-CMC_PRO_API_KEY``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from relay.errors import UpstreamError
from relay.sources.http import RETRY_STATUSES, UpstreamClient, json_body
from relay.sources.numbers import exact_number

log = logging.getLogger(__name__)

NAME = "CoinMarketCap"
INFO_BATCH = 100
MAX_LOGO_BYTES = 1024 * 1024
_AUTH_CODES = {1001, 1002, 1003, 1004, 1005, 1006, 1007}
_RATE_CODES = {1008, 1009, 1010, 1011}


class RateLimited(UpstreamError):
    """CoinMarketCap's plan limits were hit: try later (503, not 502)."""

    status = 503


class Coin(NamedTuple):
    """One listing row, in the column order of the staging COPY."""

    cmc_id: int
    name: str
    symbol: str
    slug: str
    rank: int | None
    price: Decimal | None
    volume_24h: Decimal | None
    market_cap: Decimal | None
    percent_change_1h: Decimal | None
    percent_change_24h: Decimal | None
    percent_change_7d: Decimal | None
    percent_change_30d: Decimal | None
    last_updated: datetime | None


class Logo(NamedTuple):
    url: str
    content_type: str
    data: bytes
    sha256: bytes


class CMCSource:
    def __init__(self, client: UpstreamClient, base_url: str, api_key: str, limit: int):
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.limit = limit

    def _get(self, path: str, params: dict, deadline: float | None) -> Any:
        headers = {"Accept": "application/json"}
        if self.api_key:
            headers["X-CMC_PRO_API_KEY"] = self.api_key
        # A 429 here means the plan's minute, day or month is spent: waiting
        # within one relay-in will not help, so it is answered (503), not retried.
        resp = self.client.get(
            f"{self.base_url}{path}",
            params=params,
            headers=headers,
            deadline=deadline,
            retry_statuses=RETRY_STATUSES - {429},
        )
        try:
            body = json_body(resp, NAME)
        except UpstreamError:
            if resp.status_code != 200:
                raise UpstreamError(
                    f"Bad Gateway: {NAME} answered HTTP {resp.status_code}"
                ) from None
            raise
        status = body.get("status") if isinstance(body, dict) else None
        code = status.get("error_code") if isinstance(status, dict) else None
        message = str((status or {}).get("error_message") or "")[:200]
        if resp.status_code == 401 or code in _AUTH_CODES:
            raise UpstreamError(
                f"Bad Gateway: {NAME} refused our API key (error {code}: {message}); "
                "check CMC_API_KEY"
            )
        if resp.status_code == 429 or code in _RATE_CODES:
            raise RateLimited(
                f"Service Unavailable: {NAME} rate limit reached (error {code}: {message}); "
                "try again later"
            )
        if resp.status_code != 200 or code not in (0, None):
            raise UpstreamError(
                f"Bad Gateway: {NAME} answered HTTP {resp.status_code} (error {code}: {message})"
            )
        if "data" not in body:
            raise UpstreamError(f"Bad Gateway: {NAME} answer has no data")
        return body["data"]

    def listings(self, *, deadline: float | None = None) -> list[Coin]:
        data = self._get(
            "/v1/cryptocurrency/listings/latest",
            {"start": 1, "limit": self.limit, "convert": "USD"},
            deadline,
        )
        return parse_listings(data)

    def logo_urls(self, cmc_ids: Iterable[int], *, deadline: float | None = None) -> dict[int, str]:
        """Ask /v2/cryptocurrency/info for the logo URL of each id, in batches."""
        ids = list(cmc_ids)
        urls: dict[int, str] = {}
        for start in range(0, len(ids), INFO_BATCH):
            batch = ids[start : start + INFO_BATCH]
            data = self._get("/v2/cryptocurrency/info", {"id": ",".join(map(str, batch))}, deadline)
            if not isinstance(data, dict):
                raise UpstreamError(f"Bad Gateway: {NAME} info data is not an object")
            for key, value in data.items():
                entry = value[0] if isinstance(value, list) and value else value
                logo = entry.get("logo") if isinstance(entry, dict) else None
                if isinstance(logo, str) and logo.startswith(("http://", "https://")):
                    try:
                        urls[int(key)] = logo
                    except ValueError:
                        continue
        return urls

    def download_logo(self, url: str, *, deadline: float | None = None) -> Logo | None:
        """Fetch one logo image; None (logged) when it cannot be had."""
        try:
            resp = self.client.get(url, deadline=deadline)
        except UpstreamError as exc:
            log.warning("logo %s: %s", url, exc.message)
            return None
        content_type = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if resp.status_code != 200 or not content_type.startswith("image/"):
            log.warning("logo %s: HTTP %s, %s", url, resp.status_code, content_type or "no type")
            return None
        if not resp.content or len(resp.content) > MAX_LOGO_BYTES:
            log.warning("logo %s: %d bytes", url, len(resp.content))
            return None
        return Logo(url, content_type, resp.content, hashlib.sha256(resp.content).digest())


def _number(value: Any, what: str) -> Decimal | None:
    return None if value is None else exact_number(value, what)


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    when = datetime.fromisoformat(str(value))
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def parse_listings(data: Any) -> list[Coin]:
    if not isinstance(data, list):
        raise UpstreamError(f"Bad Gateway: {NAME} listings data is not a list")
    coins = []
    for index, item in enumerate(data):
        try:
            if not isinstance(item, dict):
                raise TypeError("not an object")
            quote = (item.get("quote") or {}).get("USD")
            if not isinstance(quote, dict):
                raise TypeError("no USD quote")
            cmc_id, rank = item["id"], item.get("cmc_rank")
            if isinstance(cmc_id, bool) or not isinstance(cmc_id, int):
                raise TypeError("id is not an integer")
            if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int)):
                raise TypeError("cmc_rank is not an integer")
            name, symbol, slug = (str(item[k]).strip() for k in ("name", "symbol", "slug"))
            if not name or not symbol:
                raise ValueError("empty name or symbol")
            coins.append(
                Coin(
                    cmc_id=cmc_id,
                    name=name[:200],
                    symbol=symbol[:50],
                    slug=slug[:200],
                    rank=rank,
                    price=_number(quote.get("price"), "price"),
                    volume_24h=_number(quote.get("volume_24h"), "volume_24h"),
                    market_cap=_number(quote.get("market_cap"), "market_cap"),
                    percent_change_1h=_number(quote.get("percent_change_1h"), "percent_change_1h"),
                    percent_change_24h=_number(
                        quote.get("percent_change_24h"), "percent_change_24h"
                    ),
                    percent_change_7d=_number(quote.get("percent_change_7d"), "percent_change_7d"),
                    percent_change_30d=_number(
                        quote.get("percent_change_30d"), "percent_change_30d"
                    ),
                    last_updated=_time(item.get("last_updated") or quote.get("last_updated")),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UpstreamError(
                f"Bad Gateway: {NAME} listing #{index} is malformed: {exc}"
            ) from exc
    return coins
