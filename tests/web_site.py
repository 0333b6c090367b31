"""A served relay with loopback-ingested data, and the Chromium to look at it.

Shared by the browser tests (tests/test_web.py) and the page benchmark
(bench/page.py): the app is served on loopback by a threaded WSGI server
over its own database, filled through its own relay-in routes from loopback
Binance, CoinMarketCap and ECB servers.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import requests
from pytest_httpserver import HTTPServer

from relay import auth, db
from relay.app import create_app
from relay.config import Config
from tests.conftest import SECRET, bearer, fresh_database
from tests.upstreams import (
    FakeBinance,
    FakeCMC,
    FakeCoinbase,
    FakeECB,
    cmc_listing,
    make_coinbase_candles,
    make_klines,
    solid_png,
)

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Chromium as root in a sandbox with no network beyond loopback: no sandbox,
# no GPU, and none of its background calls home.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
OUT = "/relay-api/v1/relay-out"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

# (CoinMarketCap id, name, symbol, rank, price today, market cap today, logo colour).
# Market caps are not in rank order, so sorting by them is visible.
COINS = [
    (1, "Bitcoin", "BTC", 1, "91234.56789012", "1802345678901.25", (247, 147, 26)),
    (1027, "Ethereum", "ETH", 2, "3012.3456", "362345678901.5", (98, 126, 234)),
    (825, "Tether", "USDT", 3, "1.0001", "121000000000", (38, 161, 123)),
    (52, "XRP", "XRP", 4, "2.1234", "125000000000.75", (35, 41, 47)),
    (2010, "Cardano", "ADA", 5, "0.6543", "23000000000", (0, 51, 173)),
    (74, "Dogecoin", "DOGE", 6, "0.1599", "24000000000.1", (194, 166, 51)),
    (5426, "Solana", "SOL", 7, "140.25", "68000000000", (153, 69, 255)),
    (2, "Litecoin", "LTC", 8, "88.8", "6700000000", (52, 93, 157)),
    (6636, "Polkadot", "DOT", 9, "4.44", "6800000000", (230, 0, 122)),
    (1831, "Bitcoin Cash", "BCH", 10, "450.5", "8900000000", (141, 193, 81)),
    # a figure that rounds to nothing: the page must show its digits, not 0
    (90001, "Tinycoin", "TINY", 11, "0.00001234", "0.01234", (128, 128, 128)),
]
# Closes on the days the dashboard compares against, as a share of today's.
HISTORY = {30: Decimal("0.8"), 7: Decimal("1.1"), 1: Decimal("0.95"), 0: Decimal(1)}


class Clock:
    """The app's "now", set by the fixture as it replays the days."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def get_request(self):
        # wsgiref writes headers and body apart; without this, Nagle's algorithm
        # and delayed ACKs hold each answer's body back by tens of milliseconds.
        conn, addr = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(app):
    """Serve a WSGI app on a loopback port; yield its base URL."""
    server = make_server(
        "127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Site:
    base: str
    database_url: str
    token: str  # relay:out, for the browser and for asking the API what the page should show

    def api(self, path: str, **params) -> requests.Response:
        return requests.get(
            f"{self.base}{OUT}/{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )

    def api_doc(self) -> dict:
        return requests.get(f"{self.base}/openapi.json", timeout=10).json()


def _ingest(base: str, clock: Clock, cmc: FakeCMC, upstream: HTTPServer) -> None:
    headers = bearer("relay:in")

    def relay_in(source: str, body: dict | None = None) -> dict:
        resp = requests.post(
            f"{base}/relay-api/v1/relay-in/{source}", json=body, headers=headers, timeout=60
        )
        assert resp.status_code == 201, resp.text
        return resp.json()["data"]

    for cmc_id, *_, colour in COINS:
        upstream.expect_request(f"/img/{cmc_id}.png").respond_with_data(
            solid_png(colour), content_type="image/png"
        )
    cmc.logos = {coin[0]: upstream.url_for(f"/img/{coin[0]}.png") for coin in COINS}
    for days_back, share in sorted(HISTORY.items(), reverse=True):
        clock.now = NOW - timedelta(days=days_back, hours=2)
        cmc.listings = [
            cmc_listing(
                cmc_id,
                name,
                symbol,
                rank,
                str(Decimal(price) * share),
                market_cap=str(Decimal(cap) * share),
            )
            for cmc_id, name, symbol, rank, price, cap, _ in COINS
        ]
        # CoinMarketCap's own changes for Bitcoin, four decimals (the others keep the
        # listing's defaults): the latest day's dashboard shows these.
        btc = cmc.listings[0]["quote"]["USD"]
        btc["percent_change_24h"], btc["percent_change_7d"], btc["percent_change_30d"] = (
            Decimal("2.4187"), Decimal("-3.0565"), Decimal("11.9021")
        )  # fmt: skip
        relay_in("cmc")

    clock.now = NOW
    binance = FakeBinance(upstream)
    start = NOW - timedelta(hours=48)
    binance.add("ADAUSDT", make_klines(start, 48 * 60, price="0.60000000", step="0.00002000"))
    binance.add("BTCUSDT", make_klines(start, 48 * 60, price="88000.00000000", step="1.25000000"))
    binance.add("ETHUSDT", make_klines(NOW - timedelta(hours=5), 5 * 60, price="3000.00000000"))
    relay_in("binance", {"symbols": ["ADAUSDT", "BTCUSDT", "ETHUSDT"]})

    coinbase = FakeCoinbase(upstream)
    coinbase.add("BTC-USD", make_coinbase_candles(start, 48 * 60, price="88100.00", step="1.10"))
    relay_in("coinbase", {"symbols": ["BTC-USD"]})

    FakeECB(upstream).serve_recorded()
    relay_in("ecb")


@contextlib.contextmanager
def running_site(server_url: str) -> Iterator[Site]:
    """The app, served on loopback over a new database filled through its relay-in routes."""
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(fresh_database(server_url, "relay_web"))
        upstream = HTTPServer(host="127.0.0.1", port=0)
        upstream.start()
        stack.callback(upstream.stop)
        cmc = FakeCMC()
        stack.callback(cmc.stop)
        base_url = upstream.url_for("/").rstrip("/")
        config = Config(database_url=database_url, jwt_secrets=(SECRET,)).replace(
            binance_url=base_url,
            coinbase_url=base_url,
            coinbase_backfill_hours=48,
            ecb_url=base_url,
            cmc_url=cmc.url,
            cmc_api_key="test-cmc-key",
            cmc_logo_hosts=(f"127.0.0.1:{upstream.port}",),
            upstream_timeout_s=5.0,
        )
        pool = db.make_pool(database_url, min_size=1, max_size=8, timeout=5, open=True)
        stack.callback(pool.close)
        clock = Clock(NOW)
        base = stack.enter_context(serve(create_app(config, pool, now=clock)))
        _ingest(base, clock, cmc, upstream)
        yield Site(base, database_url, auth.mint_token(SECRET, "web-test", ["relay:out"], 3600))


def launch_chromium(playwright):
    """Debian's Chromium, headless, through Playwright (which never downloads a browser)."""
    if not os.path.exists(CHROMIUM):
        raise FileNotFoundError(
            f"no Chromium at {CHROMIUM}: `./run test` installs Debian's chromium when run as "
            "root; otherwise apt-get install chromium, or set CHROMIUM to its path"
        )
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
