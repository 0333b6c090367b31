"""The web page at /, driven in headless Chromium.

A real app is served on loopback (threaded WSGI server) over its own
database, filled through its own relay-in routes from loopback Binance,
CoinMarketCap and ECB servers. The browser is Debian's Chromium driven by
Playwright; screenshots go to ``test-output/screenshots`` (or
``$RELAY_TEST_OUTPUT/screenshots``).
"""

from __future__ import annotations

import contextlib
import decimal
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests
from playwright.sync_api import expect, sync_playwright
from pytest_httpserver import HTTPServer

from relay import auth, db
from relay.app import create_app
from relay.config import Config
from relay.resources import web
from tests.conftest import SECRET, bearer, fresh_database
from tests.upstreams import (
    FIXTURES,
    FakeBinance,
    FakeCMC,
    FakeECB,
    cmc_listing,
    ecb_days,
    ecb_hist_zip,
    make_klines,
    solid_png,
)

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("RELAY_TEST_OUTPUT", ROOT / "test-output")) / "screenshots"
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
    token: str  # relay:out, for the browser and for asking the API what the page should show

    def api(self, path: str, **params) -> requests.Response:
        return requests.get(
            f"{self.base}{OUT}/{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )


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
        relay_in("cmc")

    clock.now = NOW
    binance = FakeBinance(upstream)
    start = NOW - timedelta(hours=48)
    binance.add("ADAUSDT", make_klines(start, 48 * 60, price="0.60000000", step="0.00002000"))
    binance.add("BTCUSDT", make_klines(start, 48 * 60, price="88000.00000000", step="1.25000000"))
    binance.add("ETHUSDT", make_klines(NOW - timedelta(hours=5), 5 * 60, price="3000.00000000"))
    relay_in("binance", {"symbols": ["ADAUSDT", "BTCUSDT", "ETHUSDT"]})

    ecb = FakeECB(upstream)
    ecb.files["eurofxref-daily.xml"] = (FIXTURES / "ecb_daily.xml").read_bytes()
    ecb.files["eurofxref-hist-90d.xml"] = (FIXTURES / "ecb_hist90d.xml").read_bytes()
    ecb.files["eurofxref-hist.zip"] = ecb_hist_zip(
        ecb_days((FIXTURES / "ecb_hist90d.xml").read_text()), ["USD", "JPY", "GBP", "CHF"]
    )
    relay_in("ecb")


@pytest.fixture(scope="module")
def site(server_url) -> Site:
    """The app, served on loopback over a database filled through its relay-in routes."""
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(fresh_database(server_url, "relay_web"))
        upstream = HTTPServer(host="127.0.0.1", port=0)
        upstream.start()
        stack.callback(upstream.stop)
        cmc = FakeCMC()
        stack.callback(cmc.stop)
        base_url = upstream.url_for("/").rstrip("/")
        config = Config(
            database_url=database_url,
            jwt_secrets=(SECRET,),
            binance_url=base_url,
            ecb_url=base_url,
            cmc_url=cmc.url,
            cmc_api_key="test-cmc-key",
            upstream_timeout_s=5.0,
        )
        pool = db.make_pool(database_url, min_size=1, max_size=8, timeout=5, open=True)
        stack.callback(pool.close)
        clock = Clock(NOW)
        base = stack.enter_context(serve(create_app(config, pool, now=clock)))
        _ingest(base, clock, cmc, upstream)
        yield Site(base, auth.mint_token(SECRET, "web-test", ["relay:out"], 3600))


@pytest.fixture(scope="module")
def down_site(server_url) -> Site:
    """The same app over a database that does not answer (port 9 on loopback)."""
    config = Config(database_url="postgresql://relay@127.0.0.1:9/relay", jwt_secrets=(SECRET,))
    pool = db.make_pool(config.database_url, min_size=0, max_size=2, timeout=0.5)
    pool.open(wait=False)
    try:
        with serve(create_app(config, pool)) as base:
            yield Site(base, auth.mint_token(SECRET, "web-test", ["relay:out"], 3600))
    finally:
        pool.close(timeout=1)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `./run test` installs Debian's chromium when run as "
            "root; otherwise apt-get install chromium, or set CHROMIUM to its path"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser):
    """Open / of a site in a fresh browser context; fail on any script error or CSP refusal."""
    contexts, problems = [], []

    def open_(site: Site, width: int = 1280, height: int = 900):
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on(
            "console",
            lambda msg: (
                problems.append(msg.text)
                if msg.type == "error" and "Failed to load resource" not in msg.text
                else None
            ),
        )
        page.goto(site.base + "/")
        return page

    yield open_
    for context in contexts:
        context.close()
    assert problems == []


def sign_in(page, token: str) -> None:
    page.fill("#token-input", token)
    page.click("#token-form button[type=submit]")


def dashboard_symbols(page) -> list[str]:
    return page.locator("#dashboard-table tbody tr").evaluate_all(
        "rows => rows.map(row => row.dataset.symbol)"
    )


def market_caps(page) -> list[Decimal]:
    texts = page.locator("#dashboard-table tbody td:nth-child(8)").all_inner_texts()
    return [Decimal(text.replace(",", "")) for text in texts]


def number(text: str) -> Decimal:
    return Decimal(text.replace(",", "").split(" ")[0].rstrip("%"))


def wait_until_loaded(page) -> None:
    expect(page.locator("#dashboard-table tbody tr")).to_have_count(len(COINS))
    expect(page.locator("#dashboard-table img.logo")).to_have_count(len(COINS))
    expect(page.locator("#price-asof")).to_contain_text("as of")
    expect(page.locator("#chart-svg g")).not_to_have_count(0)


# -- the page and its assets (no browser) ---------------------------------------------------


def test_page_and_assets_are_public_and_cached_by_fingerprint(app):
    page = app.get("/")
    assert page.content_type == "text/html"
    assert page.headers["Cache-Control"] == "no-cache"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    version = web.fingerprint(web.WEB / "app.js")
    assert f'src="/static/app.js?v={version}"' in page.text

    current = app.get(f"/static/app.js?v={version}")
    assert current.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert current.content_type in ("text/javascript", "application/javascript")
    assert current.body == (web.WEB / "app.js").read_bytes()
    assert app.get("/static/app.js?v=0ld").headers["Cache-Control"] == "no-cache"
    assert app.get("/static/app.css").headers["Cache-Control"] == "no-cache"
    missing = app.get("/static/nothing.js", status=404)
    assert missing.json["code"] == 404
    app.get("/static/../resources/web.py", status=404)


# -- the page in a browser -------------------------------------------------------------------


def test_without_a_token_the_page_asks_for_one(open_page, site):
    page = open_page(site)
    expect(page.locator("#token-status")).to_contain_text("paste a relay:out token")
    expect(page.locator("#dashboard-table tbody tr")).to_have_count(0)


def test_dashboard_sorts_by_market_cap_both_ways_and_shows_logos(open_page, site):
    page = open_page(site)
    sign_in(page, site.token)
    wait_until_loaded(page)
    assert page.evaluate("sessionStorage.getItem('relay.token')") == site.token
    assert site.token not in page.url

    def api_order(direction):
        rows = site.api("dashboard", order_by="market_cap", order_type=direction).json()
        return [row["symbol"] for row in rows["data"]["rows"]]

    header = page.locator("#dashboard-table th[data-order=market_cap]")
    expect(header).to_have_attribute("aria-sort", "descending")
    assert dashboard_symbols(page) == api_order("desc")
    assert market_caps(page) == sorted(market_caps(page), reverse=True)
    assert dashboard_symbols(page)[:3] == ["BTC", "ETH", "XRP"]

    header.locator("button").click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    expect(page.locator("#dashboard-table tbody tr").first).to_have_attribute("data-symbol", "LTC")
    assert dashboard_symbols(page) == api_order("asc")
    assert market_caps(page) == sorted(market_caps(page))

    header.locator("button").click()
    expect(header).to_have_attribute("aria-sort", "descending")
    expect(page.locator("#dashboard-table tbody tr").first).to_have_attribute("data-symbol", "BTC")

    # Bitcoin's row holds the figures the API gives for it, exactly.
    btc = site.api("dashboard", id="BTC").json()["data"]["rows"][0]
    cells = page.locator("#dashboard-table tr[data-symbol=BTC] td").all_inner_texts()
    assert number(cells[2]) == Decimal(btc["price"])
    assert cells[3] == "+5.26%" and btc["change_24h"] == "5.2632"  # 1 / 0.95 - 1
    assert cells[4] == "-9.09%" and btc["change_7d"] == "-9.0909"
    assert cells[5] == "+25.00%" and btc["change_1m"] == "25.0000"

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "dashboard-1280.png", full_page=True)


def test_search_finds_a_coin_and_shows_it_in_the_dashboard(open_page, site):
    page = open_page(site)
    sign_in(page, site.token)
    expect(page.locator("#dashboard-table tbody tr")).to_have_count(len(COINS))

    page.fill("#search-input", "bitc")
    results = page.locator("#search-results li")
    expect(results).to_have_count(2)
    names = [hit["name"] for hit in site.api("search", name="bitc").json()["data"]["results"]]
    assert [text.split("\n")[0].strip() for text in results.all_inner_texts()] == names
    assert set(names) == {"Bitcoin", "Bitcoin Cash"}

    results.filter(has_text="Bitcoin Cash").locator("button").click()
    expect(page.locator("#dashboard-table tbody tr")).to_have_count(1)
    assert dashboard_symbols(page) == ["BCH"]
    expect(page.locator("#dashboard-filter")).to_contain_text("BCH")
    page.click("#dashboard-filter button")
    expect(page.locator("#dashboard-table tbody tr")).to_have_count(len(COINS))

    page.fill("#search-input", "zzzz")
    expect(page.locator("#search-empty")).to_have_text("No coin matches “zzzz”.")
    expect(results).to_have_count(0)


def test_price_card_and_profit_calculator_show_what_the_api_returns(open_page, site):
    page = open_page(site)
    sign_in(page, site.token)
    expect(page.locator("#market-symbol option")).to_have_text(["ADAUSDT", "BTCUSDT", "ETHUSDT"])
    page.select_option("#market-symbol", "BTCUSDT")
    expect(page.locator("#price-asof")).to_contain_text("BTCUSDT")
    price = site.api("price", currency="BTCUSDT").json()["data"]
    assert number(page.inner_text("#price-value")) == Decimal(price["price"])

    page.fill("#profit-value", "1000")
    page.click("#profit-form button[type=submit]")
    expect(page.locator("#profit-result")).to_be_visible()
    profit = site.api("profit", currency="BTCUSDT", value="1000").json()["data"]
    shown = {
        field: page.inner_text(f'#profit-result [data-field="{field}"]')
        for field in ("final_value", "profit", "profit_percent", "price_then", "price_now")
    }
    for field in ("final_value", "profit", "price_then", "price_now"):
        assert number(shown[field]) == Decimal(profit[field]), (field, shown, profit)
    percent = Decimal(profit["profit_percent"]).quantize(Decimal("0.01"), decimal.ROUND_HALF_UP)
    assert number(shown["profit_percent"]) == percent, (shown, profit)
    assert Decimal(profit["profit"]) > 0
    assert shown["profit_percent"].startswith("+")

    # A symbol with five hours of history cannot answer: the API's 422, in words.
    page.select_option("#market-symbol", "ETHUSDT")
    expect(page.locator("#price-asof")).to_contain_text("ETHUSDT")
    page.click("#profit-form button[type=submit]")
    error = page.locator("#profit-form > .error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("ETHUSDT has 5.0 hours of history, 24 are needed.")
    expect(page.locator("#profit-result")).to_be_hidden()

    page.fill("#profit-value", "-3")
    page.click("#profit-form button[type=submit]")
    expect(error).to_have_text("Enter a positive amount, such as 1000 or 12.5.")


def test_candle_chart_follows_the_interval_picker(open_page, site):
    page = open_page(site)
    sign_in(page, site.token)
    expect(page.locator("#chart-caption")).to_contain_text("1h candles of ADAUSDT")
    hourly = site.api("candles", symbol="ADAUSDT", interval="1h").json()["data"]["candles"]
    expect(page.locator("#chart-svg g")).to_have_count(len(hourly))

    page.click("#chart-intervals button[data-interval='4h']")
    expect(page.locator("#chart-caption")).to_contain_text("4h candles of ADAUSDT")
    four = site.api("candles", symbol="ADAUSDT", interval="4h").json()["data"]["candles"]
    expect(page.locator("#chart-svg g")).to_have_count(len(four))
    expect(page.locator("#chart-intervals button[data-interval='4h']")).to_have_attribute(
        "aria-pressed", "true"
    )
    last = four[-1]
    assert page.locator("#chart-svg g title").last.text_content() == (
        f"{last['time'][:16].replace('T', ' ')}:00 UTC  O {last['open']}  H {last['high']}  "
        f"L {last['low']}  C {last['close']}  V {last['volume']}"
    )


def test_converter_converts_on_a_chosen_date(open_page, site):
    page = open_page(site)
    sign_in(page, site.token)
    expect(page.locator("#fx-from option[value=JPY]")).to_have_count(1)
    page.select_option("#fx-from", "USD")
    page.select_option("#fx-to", "JPY")
    page.fill("#fx-amount", "250.5")
    page.fill("#fx-date", "2018-06-01")
    page.click("#fx-form button[type=submit]")
    answer = site.api(
        "convert", **{"from": "USD", "to": "JPY", "amount": "250.5"}, date="2018-06-01"
    )
    data = answer.json()["data"]
    result = f"250.5 USD = {Decimal(data['result']):,} JPY"
    expect(page.locator("#fx-result")).to_have_text(result)
    expect(page.locator("#fx-detail")).to_contain_text(f"1 USD = {data['rate']} JPY")
    expect(page.locator("#fx-detail")).to_contain_text(data["date"])

    page.click("#fx-swap")
    page.fill("#fx-date", "")
    page.click("#fx-form button[type=submit]")
    expect(page.locator("#fx-result")).to_contain_text("250.5 JPY = ")
    expect(page.locator("#fx-detail")).to_contain_text("2018-06-11")  # the latest day held

    # A day before any rate held: the API's 404, in words, not a blank panel.
    page.fill("#fx-date", "2001-01-02")
    page.click("#fx-form button[type=submit]")
    error = page.locator("#fx-form .error")
    expect(error).to_be_visible()
    expect(page.locator("#fx-result")).to_have_text("")
    answer = site.api("convert", **{"from": "JPY", "to": "USD"}, date="2001-01-02")
    assert (answer.status_code, answer.json()["message"]) == (
        404,
        "Not Found: no rates stored for that date",
    )
    expect(error).to_have_text("No rates stored for that date.")


def test_an_expired_token_shows_a_readable_error(open_page, site):
    page = open_page(site)
    expired = auth.mint_token(SECRET, "web-test", ["relay:out"], 60, now=lambda: time.time() - 600)
    sign_in(page, expired)
    error = page.locator("#dashboard > .error")
    expect(error).to_be_visible()
    expect(error).to_have_text("Token expired. Paste a fresh relay:out token above.")
    expect(page.locator("#token-status")).to_have_text(
        "The API refused this token. Paste a fresh relay:out token."
    )
    expect(page.locator("#market > .error")).to_contain_text("Token expired.")

    # A valid token for the wrong scope: the API's 403, in words.
    sign_in(page, auth.mint_token(SECRET, "web-test", ["relay:in"], 600))
    expect(error).to_have_text(
        "Token lacks the relay:out scope. Ask for a token with the relay:out scope."
    )

    sign_in(page, site.token)  # a good token recovers every panel
    expect(page.locator("#dashboard-table tbody tr")).to_have_count(len(COINS))
    expect(error).to_be_hidden()

    page.click("#token-forget")  # and forgetting it drops the token and every figure
    expect(page.locator("#token-status")).to_contain_text("No token yet")
    expect(page.locator("#dashboard-table tbody tr")).to_have_count(0)
    assert page.evaluate("sessionStorage.getItem('relay.token')") is None


def test_a_database_outage_shows_a_readable_error(open_page, down_site):
    page = open_page(down_site)
    sign_in(page, down_site.token)
    error = page.locator("#dashboard > .error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("The service is unavailable for a moment; try again shortly.")
    assert "{" not in error.inner_text()


def test_the_page_fits_a_375_pixel_screen(open_page, site):
    page = open_page(site, width=375, height=812)
    sign_in(page, site.token)
    wait_until_loaded(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    # The coin, price, 24h and market cap columns fit without scrolling sideways.
    table = page.locator("#dashboard .table-wrap")
    assert table.evaluate("wrap => wrap.scrollWidth <= wrap.clientWidth"), table.evaluate(
        "wrap => [wrap.scrollWidth, wrap.clientWidth]"
    )
    market_cap = page.locator("#dashboard-table tr[data-symbol=BTC] td:nth-child(8)")
    assert market_cap.locator(".short").inner_text() == "1.80 T"
    assert market_cap.locator(".short").is_visible()
    expect(page.locator("#dashboard-table th[data-order='7d']")).to_be_hidden()
    expect(page.locator("#dashboard-table th[data-order=market_cap]")).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "dashboard-375.png", full_page=True)


def test_decimal_formatting_keeps_every_digit(open_page, site):
    page = open_page(site)
    results = page.evaluate(
        """async () => {
            const m = await import(document.querySelector("script[type=module]").src);
            return {
                round: [["1.005", 2], ["-0.004", 2], ["9.995", 2], ["999.5", 0], ["12", 2],
                        ["0.12345678901234567890", 18]].map(([t, p]) => m.roundDecimal(t, p)),
                price: ["91234.56789012", "0.50000000", "1802345678901.25", "7"].map(m.formatPrice),
                percent: ["5.2632", "-9.0909", "0", "0.004"].map(m.formatPercent),
                compact: ["1802345678901.25", "999.5", "1000", "23999999999", "-1234567", "0.5"]
                    .map(m.compact),
                explain: [m.explain(401, "Unauthorized: token expired"),
                          m.explain(503, "Service Unavailable: database unavailable"),
                          m.explain(0, "")],
            };
        }"""
    )
    assert results["round"] == ["1.01", "0.00", "10.00", "1000", "12.00", "0.123456789012345679"]
    assert results["price"] == ["91,234.56789012", "0.50", "1,802,345,678,901.25", "7.00"]
    assert results["percent"] == ["+5.26%", "-9.09%", "0.00%", "0.00%"]
    assert results["compact"] == ["1.80 T", "1000", "1.00 K", "24.00 B", "-1.23 M", "1"]
    assert results["explain"] == [
        "Token expired. Paste a fresh relay:out token above.",
        "Database unavailable. The service is unavailable for a moment; try again shortly.",
        "Cannot reach the relay API. Check your connection and try again.",
    ]
