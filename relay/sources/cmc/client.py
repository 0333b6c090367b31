"""CoinMarketCap: the latest listings, coin info (logo URLs), and logo images.

``GET {CMC_URL}/v1/cryptocurrency/listings/latest?start=1&limit=&convert=USD``
answers ``{"status": {...,"error_code": 0}, "data": [coin, ...]}``, each coin
with ``id, name, symbol, slug, cmc_rank, last_updated`` and
``quote.USD.{price, volume_24h, market_cap, percent_change_1h/24h/7d/30d}``.
``GET /v2/cryptocurrency/info?id=1,2`` answers ``data`` keyed by id, each
with a ``logo`` URL. Both take the key in ``X-CMC_PRO_API_KEY``.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from relay.errors import UpstreamError
from relay.sources.http import DEFAULT_PORTS, RETRY_STATUSES, UpstreamClient, json_body, url_origin
from relay.sources.numbers import (
    VALUE_ERRORS,
    exact_number,
    plain_text,
    plausible_time,
    whole_number,
)

log = logging.getLogger(__name__)

NAME = "CoinMarketCap"
# Listings are asked for in pages of start/limit (credits follow the coins, not the
# calls): a page's body and its parsed form stay a few MiB whatever CMC_LIMIT is.
LISTINGS_PAGE = 1000
INFO_BATCH = 100
MAX_LOGO_BYTES = 1024 * 1024
DEFAULT_LOGO_HOSTS = ("s2.coinmarketcap.com",)
# A listing is about 1.5 KB of JSON and an info entry a few KB (its description):
# allow a few times that, and no more.
BYTES_PER_LISTING = 4 * 1024
MAX_INFO_BYTES = INFO_BATCH * 32 * 1024
MAX_URL_LENGTH = 500
_AUTH_CODES = {1001, 1002, 1003, 1004, 1005, 1006, 1007}
_RATE_CODES = {1008, 1009, 1010, 1011}
_MAX_INT = 2**31 - 1  # cmc_id and rank are PostgreSQL integers


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
    def __init__(
        self,
        client: UpstreamClient,
        base_url: str,
        api_key: str,
        limit: int,
        logo_hosts: Iterable[str] = DEFAULT_LOGO_HOSTS,
    ):
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.limit = limit
        self.logo_hosts = LogoHosts(logo_hosts)

    def _get(self, path: str, params: dict, deadline: float | None, max_bytes: int) -> Any:
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
            max_bytes=max_bytes,
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
        message = str(status.get("error_message") or "")[:200] if isinstance(status, dict) else ""
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
        if not isinstance(body, dict) or "data" not in body:
            raise UpstreamError(f"Bad Gateway: {NAME} answer has no data")
        return body["data"]

    def listings(self, *, deadline: float | None = None) -> list[Coin]:
        """The top ``limit`` coins by rank, asked for page by page, each coin once.

        Ranks can move between two pages' requests, so a coin may come twice (the
        first is kept) or be skipped until the next snapshot. A short page is the end.
        """
        coins: dict[int, Coin] = {}
        for start in range(1, self.limit + 1, LISTINGS_PAGE):
            size = min(LISTINGS_PAGE, self.limit - start + 1)
            data = self._get(
                "/v1/cryptocurrency/listings/latest",
                {"start": start, "limit": size, "convert": "USD"},
                deadline,
                64 * 1024 + size * BYTES_PER_LISTING,
            )
            page = parse_listings(data)[:size]  # never more than CMC_LIMIT, whatever is sent
            for coin in page:
                coins.setdefault(coin.cmc_id, coin)
            if len(page) < size:
                break
        return list(coins.values())

    def logo_urls(self, cmc_ids: Iterable[int], *, deadline: float | None = None) -> dict[int, str]:
        """Ask /v2/cryptocurrency/info for the logo URL of each id, in batches."""
        ids = list(cmc_ids)
        urls: dict[int, str] = {}
        for start in range(0, len(ids), INFO_BATCH):
            batch = ids[start : start + INFO_BATCH]
            try:
                data = self._get(
                    "/v2/cryptocurrency/info",
                    {"id": ",".join(map(str, batch))},
                    deadline,
                    MAX_INFO_BYTES,
                )
            except UpstreamError as exc:
                if not urls:
                    raise
                # Out of time or refused: the logos of the batches we have are still worth it.
                log.warning("cmc: logo info stopped after %d ids: %s", start, exc.message)
                break
            if not isinstance(data, dict):
                raise UpstreamError(f"Bad Gateway: {NAME} info data is not an object")
            for key, value in data.items():
                entry = value[0] if isinstance(value, list) and value else value
                logo = entry.get("logo") if isinstance(entry, dict) else None
                if not isinstance(logo, str):
                    continue
                if not (
                    logo.startswith(("http://", "https://"))
                    and len(logo) <= MAX_URL_LENGTH
                    and logo.isascii()
                    and logo.isprintable()
                ):
                    log.warning("cmc: coin %s has an unusable logo URL", str(key)[:20])
                    continue
                with contextlib.suppress(ValueError):  # a key that is not an id
                    urls[int(key)] = logo
        return urls

    def download_logo(self, url: str, *, deadline: float | None = None) -> Logo | None:
        """Fetch one logo image; None (logged) when it cannot be had or is not an image.

        Only hosts in CMC_LOGO_HOSTS are asked (redirects too), and only PNG,
        JPEG, GIF or WebP, recognised by their first bytes, are kept: whatever
        the listing says, a logo URL never reaches an internal address, and
        nothing scriptable (SVG) is ever served back.
        """
        try:
            resp = self.client.get(
                url, deadline=deadline, max_bytes=MAX_LOGO_BYTES, guard=self.logo_hosts
            )
        except UpstreamError as exc:
            log.warning("logo %s: %s", url[:200], exc.message)
            return None
        kind = image_type(resp.content)
        if resp.status_code != 200 or kind is None:
            log.warning(
                "logo %s: HTTP %s, not a PNG, JPEG, GIF or WebP", url[:200], resp.status_code
            )
            return None
        return Logo(url, kind, resp.content, hashlib.sha256(resp.content).digest())


def image_type(data: bytes) -> str | None:
    """The content type of a PNG, JPEG, GIF or WebP image, read from its bytes; else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


class LogoHosts:
    """The guard for logo URLs: only listed hosts, and internal addresses only when listed.

    An entry is ``host`` (the scheme's default port) or ``host:port``. A listed
    name that resolves to a loopback, private, link-local or otherwise
    non-public address is refused unless that address itself is listed.
    """

    def __init__(self, entries: Iterable[str], resolve: Callable = socket.getaddrinfo):
        self._entries: set[tuple[str, int | None]] = set()
        for entry in entries:
            parts = urlsplit("//" + entry.strip().lower())
            if parts.hostname:
                self._entries.add((parts.hostname, parts.port))
        self._resolve = resolve

    def __call__(self, url: str) -> None:
        try:
            scheme, host, port = url_origin(url)
        except ValueError as exc:
            raise UpstreamError(f"logo URL refused: {exc}") from None
        default = port == DEFAULT_PORTS[scheme]
        if not self._listed(host, port, default):
            raise UpstreamError(f"logo host {host[:100]}:{port} is not in CMC_LOGO_HOSTS")
        try:
            infos = self._resolve(host, port, type=socket.SOCK_STREAM)
        except OSError:
            raise UpstreamError(f"logo host {host[:100]} does not resolve") from None
        for info in infos:
            address = ipaddress.ip_address(info[4][0].split("%")[0])
            if not address.is_global and not self._listed(str(address), port, default):
                raise UpstreamError(
                    f"logo host {host[:100]} resolves to a non-public address ({address})"
                )

    def _listed(self, host: str, port: int, default: bool) -> bool:
        return (host, port) in self._entries or (default and (host, None) in self._entries)


def _number(value: Any, what: str) -> Decimal | None:
    return None if value is None else exact_number(value, what)


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    return plausible_time(datetime.fromisoformat(plain_text(value, "last_updated", 40)), "time")


def parse_listings(data: Any) -> list[Coin]:
    if not isinstance(data, list):
        raise UpstreamError(f"Bad Gateway: {NAME} listings data is not a list")
    coins = []
    for index, item in enumerate(data):
        try:
            if not isinstance(item, dict):
                raise TypeError("not an object")
            quotes = item.get("quote")
            quote = quotes.get("USD") if isinstance(quotes, dict) else None
            if not isinstance(quote, dict):
                raise TypeError("no USD quote")
            cmc_id, rank = item["id"], item.get("cmc_rank")
            if not isinstance(cmc_id, int) or (rank is not None and not isinstance(rank, int)):
                raise TypeError("id or cmc_rank is not an integer")
            cmc_id = whole_number(cmc_id, "id", _MAX_INT)
            rank = None if rank is None else whole_number(rank, "cmc_rank", _MAX_INT)
            name, symbol, slug = (
                plain_text(str(item[k]).strip(), k, 1000) for k in ("name", "symbol", "slug")
            )
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
        except VALUE_ERRORS as exc:
            raise UpstreamError(
                f"Bad Gateway: {NAME} listing #{index} is malformed: {exc}"
            ) from exc
    return coins
