"""The web page at /, driven in headless Chromium.

The app is served on loopback over a database filled through its own
relay-in routes (tests/web_site.py). The browser is Debian's Chromium
driven by Playwright; screenshots go to ``test-output/screenshots`` (or
``$RELAY_TEST_OUTPUT/screenshots``).
"""

from __future__ import annotations

import os
import time
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import expect

from relay import auth, db
from relay.app import create_app
from relay.config import Config
from relay.resources import web
from tests.conftest import SECRET, fresh_database
from tests.web_site import COINS, Site, running_site, serve

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = Path(os.environ.get("RELAY_TEST_OUTPUT", ROOT / "test-output")) / "screenshots"


@pytest.fixture(scope="module")
def site(server_url) -> Site:
    with running_site(server_url) as site:
        yield site


@pytest.fixture(scope="module")
def down_site(server_url) -> Site:
    """The same app over a database that does not answer (port 9 on loopback)."""
    config = Config(database_url="postgresql://relay@127.0.0.1:9/relay", jwt_secrets=(SECRET,))
    pool = db.make_pool(config.database_url, min_size=0, max_size=2, timeout=0.5)
    pool.open(wait=False)
    try:
        with serve(create_app(config, pool)) as base:
            token = auth.mint_token(SECRET, "web-test", ["relay:out"], 3600)
            yield Site(base, config.database_url, token)
    finally:
        pool.close(timeout=1)


@pytest.fixture(scope="module")
def empty_site(server_url) -> Site:
    """The app over a migrated database that holds nothing yet: a new install."""
    with fresh_database(server_url, "relay_web_empty") as database_url:
        config = Config(database_url=database_url, jwt_secrets=(SECRET,))
        pool = db.make_pool(database_url, min_size=0, max_size=4, timeout=5, open=True)
        try:
            with serve(create_app(config, pool)) as base:
                token = auth.mint_token(SECRET, "web-test", ["relay:out"], 3600)
                yield Site(base, database_url, token)
        finally:
            pool.close(timeout=1)


@pytest.fixture
def open_page(browser):
    """Open / of a site in a fresh browser context; fail on any script error or CSP refusal."""
    contexts, problems = [], []

    def open_(site: Site, width: int = 1280, height: int = 900, path: str = "/"):
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
        page.goto(site.base + path)
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
    app.get("/static/..%2Fresources%2Fweb.py", status=404)
    app.get("/static/app.js%00.css", status=404)
    app.get("/static/index.html", status=404)  # only as /, with its CSP and fingerprints
    assert current.headers["X-Content-Type-Options"] == "nosniff"


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
    expect(page.locator("#dashboard-table tbody tr").first).to_have_attribute("data-symbol", "TINY")
    assert dashboard_symbols(page) == api_order("asc")
    assert market_caps(page) == sorted(market_caps(page))

    header.locator("button").click()
    expect(header).to_have_attribute("aria-sort", "descending")
    expect(page.locator("#dashboard-table tbody tr").first).to_have_attribute("data-symbol", "BTC")

    # Bitcoin's row holds the figures the API gives for it, exactly.
    btc = site.api("dashboard", id="BTC").json()["data"]["rows"][0]
    cells = page.locator("#dashboard-table tr[data-symbol=BTC] td").all_inner_texts()
    assert number(cells[2]) == Decimal(btc["price"])
    # The latest snapshot's day: CoinMarketCap's own changes, as its listing sent them.
    assert btc["changes_from"] == "cmc_snapshot"
    assert cells[3] == "+2.4187 %" and btc["change_24h"] == "2.4187"
    assert cells[4] == "-3.0565 %" and btc["change_7d"] == "-3.0565"
    assert cells[5] == "+11.9021 %" and btc["change_1m"] == "11.9021"

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
    expect(page.locator("#dashboard-meta")).to_have_text("1 coin on 2026-11-20 (UTC), in USD")
    page.click("#dashboard-filter button")
    expect(page.locator("#dashboard-table tbody tr")).to_have_count(len(COINS))

    # A coin sharing BCH's symbol, ranked far below it: its hit shows it, not Bitcoin Cash.
    with psycopg.connect(site.database_url, autocommit=True) as conn:
        coin = conn.execute(
            "INSERT INTO coin (cmc_id, name, symbol, slug, rank) "
            "VALUES (99999, 'Bitcoin Cashback', 'BCH', 'cashback', 999) RETURNING id"
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO coin_daily (coin_id, day, close) "
            "SELECT %s, max(day), 1 FROM coin_daily", (coin,)
        )  # fmt: skip
    try:
        page.fill("#search-input", "cashback")
        results.filter(has_text="Bitcoin Cashback").locator("button").click()
        expect(page.locator("#dashboard-filter")).to_contain_text("Bitcoin Cashback (BCH)")
        expect(page.locator("#dashboard-table tbody tr")).to_have_count(1)
        expect(page.locator("#dashboard-table tbody tr")).to_contain_text("Bitcoin Cashback")
        page.click("#dashboard-filter button")
    finally:
        with psycopg.connect(site.database_url, autocommit=True) as conn:
            conn.execute("DELETE FROM coin_daily WHERE coin_id = %s", (coin,))
            conn.execute("DELETE FROM coin WHERE id = %s", (coin,))

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
    assert shown["profit_percent"] == f"+{profit['profit_percent']} %", (shown, profit)
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


def test_the_exchange_picker_switches_price_profit_and_chart_to_coinbase(open_page, site):
    page = open_page(site)
    sign_in(page, site.token)
    expect(page.locator("#market-exchange option")).to_have_text(["Binance", "Coinbase"])
    page.select_option("#market-exchange", "coinbase")
    expect(page.locator("#market-symbol option")).to_have_text(["BTC-USD"])
    expect(page.locator("#price-asof")).to_contain_text("BTC-USD on Coinbase")
    price = site.api("price", symbol="BTC-USD", exchange="coinbase").json()["data"]
    assert number(page.inner_text("#price-value")) == Decimal(price["price"])
    expect(page.locator("#chart-caption")).to_contain_text("1h candles of BTC-USD")
    hourly = site.api("candles", symbol="BTC-USD", interval="1h", exchange="coinbase")
    expect(page.locator("#chart-svg g")).to_have_count(len(hourly.json()["data"]["candles"]))

    page.click("#profit-form button[type=submit]")
    expect(page.locator("#profit-result")).to_be_visible()
    profit = site.api("profit", symbol="BTC-USD", value="1000", exchange="coinbase").json()
    shown = page.inner_text('#profit-result [data-field="final_value"]')
    assert number(shown) == Decimal(profit["data"]["final_value"])

    page.select_option("#market-exchange", "binance")
    expect(page.locator("#market-symbol option")).to_have_text(["ADAUSDT", "BTCUSDT", "ETHUSDT"])
    expect(page.locator("#price-asof")).to_contain_text("BTCUSDT on Binance")


def test_candle_chart_follows_the_interval_picker(open_page, site):
    page = open_page(site)
    sign_in(page, site.token)
    # BTCUSDT first, though ADAUSDT comes first in order: the market most look for.
    expect(page.locator("#market-symbol")).to_have_value("BTCUSDT")
    expect(page.locator("#chart-caption")).to_contain_text("1h candles of BTCUSDT")
    hourly = site.api("candles", symbol="BTCUSDT", interval="1h").json()["data"]["candles"]
    expect(page.locator("#chart-svg g")).to_have_count(len(hourly))

    page.click("#chart-intervals button[data-interval='4h']")
    expect(page.locator("#chart-caption")).to_contain_text("4h candles of BTCUSDT")
    four = site.api("candles", symbol="BTCUSDT", interval="4h").json()["data"]["candles"]
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
    said = (
        "no rates for 2001-01-02 or the business day before it; the newest day held is 2018-06-11"
    )
    assert (answer.status_code, answer.json()["message"]) == (404, f"Not Found: {said}")
    expect(error).to_have_text(f"N{said[1:]}.")


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


def test_a_database_outage_shows_a_readable_error_in_every_panel_the_chart_too(
    open_page, down_site
):
    page = open_page(down_site)
    sign_in(page, down_site.token)
    for panel in ("#dashboard", "#chart"):
        error = page.locator(f"{panel} > .error")
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
    # shortened for room, the full figure is the tooltip; a small one is not shortened to 0
    expect(market_cap).to_have_attribute("title", "1,802,345,678,901.25")
    tiny = page.locator("#dashboard-table tr[data-symbol=TINY] td:nth-child(8) .short")
    expect(tiny).to_have_text("0.01234")
    change = page.locator("#dashboard-table tr[data-symbol=BTC] td:nth-child(4) .short")
    expect(change).to_have_text("+2.4187 %")  # four decimals fit: not rounded to +2.42 %
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
                        ["0.12345678901234567890", 18], ["-0.0", 2], ["-1.5", 0], ["007.10", 3]]
                    .map(([t, p]) => m.roundDecimal(t, p)),
                price: ["91234.56789012", "0.50000000", "1802345678901.25", "7"].map(m.formatPrice),
                percent: ["5.2632", "-9.0909", "0", "0.004"].map(m.formatPercent),
                short: ["0.000008556319952508", "89753.09330874", "2.091039957637", "0.5",
                        "1802345678901.25", "0.9999682249844", "7"].map(m.shortPrice),
                compact: ["1802345678901.25", "999.5", "1000", "23999999999", "-1234567", "0.5",
                          "0.01234", "999999", "999994999", "999999999999999"].map(m.compact),
                decimal: ["1000.5", "0.01234", "-4.2054", "1802345678901.25", "-0.000", "12"]
                    .map((t) => m.formatDecimal(t)),
                quoted: [m.formatPrice("91234.5", { unit: "USDT" }), m.formatPercent("-4.2054")],
                axis: [m.axisLabels(9.5, 10.5, 4), m.axisLabels(88000, 91000, 4),
                       m.axisLabels(0.0995, 0.1005, 4)],
                plural: [m.plural(1, "coin"), m.plural(2, "coin"), m.plural(0, "coin")],
                explain: [m.explain(401, "Unauthorized: token expired"),
                          m.explain(503, "Service Unavailable: database unavailable"),
                          m.explain(0, "")],
            };
        }"""
    )
    assert results["round"] == [
        "1.01", "0.00", "10.00", "1000", "12.00", "0.123456789012345679", "0.00", "-2", "007.100",
    ]  # fmt: skip
    assert results["price"] == ["91,234.56789012", "0.50", "1,802,345,678,901.25", "7.00"]
    # narrow screens: six significant digits, at least the cents (the tooltip has the rest)
    assert results["short"] == [
        "0.00000855632", "89,753.09", "2.09104", "0.50", "1,802,345,678,901.25", "0.999968",
        "7.00",
    ]  # fmt: skip
    # every digit the API sent: never 1,001 for 1000.5, 0 for 0.01234 or -4.21 for -4.2054
    assert results["percent"] == ["+5.2632 %", "-9.0909 %", "0 %", "+0.004 %"]
    assert results["compact"] == [
        "1.80 T", "999.5", "1.00 K", "24.00 B", "-1.23 M", "0.5", "0.01234",
        "1.00 M", "999.99 M", "1000.00 T",  # rounding up moves up a unit, past T there is none
    ]  # fmt: skip
    assert results["decimal"] == [
        "1,000.5", "0.01234", "-4.2054", "1,802,345,678,901.25", "0.000", "12",
    ]  # fmt: skip
    assert results["quoted"] == ["91,234.50 USDT", "-4.2054 %"]
    # the chart's y axis: one number of decimals on every label, even across 10
    assert results["axis"] == [
        ["9.50", "9.75", "10.00", "10.25", "10.50"],
        ["88,000", "88,750", "89,500", "90,250", "91,000"],
        ["0.09950", "0.09975", "0.10000", "0.10025", "0.10050"],
    ]
    assert results["plural"] == ["1 coin", "2 coins", "0 coins"]
    assert results["explain"] == [
        "Token expired. Paste a fresh relay:out token above.",
        "Database unavailable. The service is unavailable for a moment; try again shortly.",
        "Cannot reach the relay API. Check your connection and try again.",
    ]


def test_the_api_docs_render_from_local_assets_only(open_page, site):
    page = open_page(site)
    asked = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto(site.base + "/docs")
    operations = page.locator(".opblock")
    expect(operations.first).to_be_visible()
    documented = sum(len(ops) for ops in site.api_doc()["paths"].values())
    expect(operations).to_have_count(documented)
    assert asked and all(url.startswith(site.base) for url in asked), asked


def test_the_page_follows_only_paths_under_its_api_prefix(open_page, site):
    page = open_page(site)
    links = [
        "/relay-api/v1/relay-out/assets/BTC/logo",
        "/relay-api/v1/relay-out/assets/A%24B/logo",
        "/relay-api/v1/relay-out/assets/../../relay-in?source=ecb&x=/logo",
        "/relay-api/v1/relay-out/assets/%2e%2e/%2E%2E/relay-in/logo",
        "/relay-api/v1/relay-out/assets/BTC/logo?x=1",
        "/relay-api/v1/relay-out/assets/BTC\\..\\..\\relay-in/logo",
        "//evil.example/relay-api/v1/relay-out/assets/BTC/logo",
        "https://evil.example/relay-api/v1/relay-out/assets/BTC/logo",
        "relay-api/v1/relay-out/assets/BTC/logo",
        "/metrics",
        "/relay-api/v10/x",
        "",
        None,
    ]
    urls = page.evaluate(
        """async ([links, routes]) => {
            const m = await import(document.querySelector("script[type=module]").src);
            return [links.map((path) => m.linkURL(path)?.href ?? null),
                    routes.map((name) => m.routeURL(name).href)];
        }""",
        [links, ["dashboard", "../../relay-in?source=ecb"]],
    )
    api = site.base + "/relay-api/v1/relay-out"
    assert urls[0] == [f"{api}/assets/BTC/logo", f"{api}/assets/A%24B/logo", *[None] * 11]
    # a route name the page builds is one segment, percent-encoded
    assert urls[1] == [f"{api}/dashboard", f"{api}/..%2F..%2Frelay-in%3Fsource%3Decb"]


def cells_of(page, symbol: str) -> list[str]:
    return page.locator(f"#dashboard-table tr[data-symbol={symbol}] td").all_inner_texts()


def test_dashboard_figures_keep_every_digit_the_api_sent(open_page, site):
    page = open_page(site)
    sign_in(page, site.token)
    expect(page.locator("#dashboard-table tbody tr")).to_have_count(len(COINS))
    btc = site.api("dashboard", id="BTC").json()["data"]["rows"][0]
    tiny = site.api("dashboard", id="TINY").json()["data"]["rows"][0]
    assert (btc["volume_24h"], tiny["market_cap"]) == ("1000.5", "0.01234")

    btc_cells, tiny_cells = cells_of(page, "BTC"), cells_of(page, "TINY")
    assert btc_cells[6] == "1,000.5"  # not 1,001
    assert btc_cells[7] == "1,802,345,678,901.25"
    assert tiny_cells[7] == "0.01234"  # not 0
    assert tiny_cells[2] == "0.00001234"
    assert btc_cells[3] == f"+{btc['change_24h']} %"


def test_the_price_card_and_profit_name_the_quote_currency(open_page, site):
    page = open_page(site)
    sign_in(page, site.token)
    page.select_option("#market-symbol", "BTCUSDT")
    expect(page.locator("#price-asof")).to_contain_text("BTCUSDT on Binance")
    price = site.api("price", symbol="BTCUSDT").json()["data"]
    assert price["quote"] == "USDT"
    shown = page.inner_text("#price-value")
    assert shown.endswith(" USDT") and number(shown) == Decimal(price["price"]), shown
    expect(page.locator("label[for=profit-value]")).to_contain_text("(USDT)")

    page.click("#profit-form button[type=submit]")
    expect(page.locator("#profit-result")).to_be_visible()
    profit = site.api("profit", symbol="BTCUSDT", value="1000").json()["data"]
    for field in ("final_value", "profit", "price_now"):
        text = page.inner_text(f'#profit-result [data-field="{field}"]')
        assert text.endswith(" USDT") and number(text) == Decimal(profit[field]), (field, text)
    expect(page.locator("#chart-caption")).to_contain_text(" USDT.")

    page.select_option("#market-exchange", "coinbase")
    expect(page.locator("#price-asof")).to_contain_text("BTC-USD on Coinbase")
    expect(page.locator("#price-value")).to_contain_text(" USD")
    assert not page.inner_text("#price-value").endswith("USDT")


# What the page says of the changes it shows, by the answer's changes_from of its rows.
CHANGES_FROM = {
    frozenset({"cmc_snapshot"}): "Changes as CoinMarketCap reported them in its snapshot.",
    frozenset({"daily_closes"}): "Changes from the daily closes held.",
    frozenset({"cmc_snapshot", "daily_closes"}): (
        "Changes from daily closes; CoinMarketCap's own where a close is missing."
    ),
}


def test_the_day_picker_shows_the_dashboard_of_that_day(open_page, site):
    page = open_page(site)
    sign_in(page, site.token)
    meta = page.locator("#dashboard-meta")
    expect(meta).to_have_text(f"{len(COINS)} coins on 2026-11-20 (UTC), in USD")
    expect(page.locator("#dashboard-date")).to_have_attribute("max", "2026-11-20")
    # The latest snapshot's day shows CoinMarketCap's own changes, and says so.
    expect(page.locator("#dashboard-changes")).to_have_text(
        CHANGES_FROM[frozenset({"cmc_snapshot"})]
    )

    page.fill("#dashboard-date", "2026-11-13")
    expect(meta).to_have_text(f"{len(COINS)} coins on 2026-11-13 (UTC), in USD")
    then = site.api("dashboard", id="BTC", date="2026-11-13").json()["data"]["rows"][0]
    latest = site.api("dashboard", id="BTC").json()["data"]["rows"][0]
    assert then["price"] != latest["price"]
    assert number(cells_of(page, "BTC")[2]) == Decimal(then["price"])
    shown = site.api("dashboard", date="2026-11-13", limit=25).json()["data"]["rows"]
    expect(page.locator("#dashboard-changes")).to_have_text(CHANGES_FROM[
        frozenset(row["changes_from"] for row in shown)
    ])  # fmt: skip

    # A day before any snapshot: the panel says so instead of showing another day.
    page.fill("#dashboard-date", "2020-01-01")
    expect(page.locator("#dashboard-table tbody tr")).to_have_count(0)
    said = page.locator("#dashboard > .empty:visible, #dashboard > .error:visible")
    expect(said).to_have_count(1)
    expect(meta).to_have_text("")

    page.fill("#dashboard-date", "")  # cleared: the latest day again
    expect(meta).to_have_text(f"{len(COINS)} coins on 2026-11-20 (UTC), in USD")
    expect(said).to_have_count(0)


def test_every_empty_panel_says_which_source_fills_it_and_how(open_page, empty_site):
    page = open_page(empty_site)
    sign_in(page, empty_site.token)
    dashboard = page.locator("#dashboard > .empty")
    expect(dashboard).to_contain_text("No coins held yet")
    expect(dashboard).to_contain_text("POST /relay-api/v1/relay-in/cmc")
    expect(dashboard).to_contain_text("CMC_API_KEY")
    expect(page.locator("#search > .empty")).to_contain_text("relay-in/cmc")
    expect(page.locator("#market > .empty")).to_contain_text(
        "No Binance symbol is held yet: run a Binance relay-in (POST /relay-api/v1/relay-in/binance"
    )
    expect(page.locator("#chart > .empty")).to_contain_text("relay-in/binance")
    expect(page.locator("#fx > .empty")).to_contain_text(
        "No ECB rates held yet: run an ECB relay-in (POST /relay-api/v1/relay-in/ecb"
    )
    # empty is not an error: no panel shows one
    expect(page.locator(".error:visible")).to_have_count(0)

    page.select_option("#market-exchange", "coinbase")
    expect(page.locator("#market > .empty")).to_contain_text("relay-in/coinbase")
    expect(page.locator("#chart > .empty")).to_contain_text("COINBASE_PRODUCTS")
    page.click("#profit-form button[type=submit]")
    expect(page.locator("#profit-form > .error")).to_contain_text("relay-in/coinbase")

    page.fill("#search-input", "bit")
    expect(page.locator("#search-empty")).to_have_text("No coin matches “bit”.")
    expect(page.locator("#search > .empty")).to_contain_text("relay-in/cmc")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 375):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=SCREENSHOTS / f"empty-{width}.png", full_page=True)


def test_a_refused_token_shows_its_error_in_the_chart_too(open_page, site):
    page = open_page(site)
    expired = auth.mint_token(SECRET, "web-test", ["relay:out"], 60, now=lambda: time.time() - 600)
    sign_in(page, expired)
    chart_error = page.locator("#chart > .error")
    expect(chart_error).to_have_text("Token expired. Paste a fresh relay:out token above.")
    expect(page.locator("#chart-svg > *")).to_have_count(0)
    expect(page.locator("#chart-caption")).to_have_text("")

    sign_in(page, site.token)  # a good token brings the chart back and drops the error
    expect(page.locator("#chart-svg g")).not_to_have_count(0)
    expect(chart_error).to_be_hidden()


def test_a_token_in_the_link_fragment_signs_in_and_leaves_the_address(open_page, site):
    page = open_page(site, path=f"/#token={site.token}")
    expect(page.locator("#dashboard-table tbody tr")).to_have_count(len(COINS))
    assert page.url == site.base + "/"  # gone from the address bar and the history entry
    assert page.evaluate("sessionStorage.getItem('relay.token')") == site.token


@pytest.mark.parametrize("width", [1280, 900, 375, 320])
def test_the_search_placeholder_is_not_cut_off(open_page, site, width):
    page = open_page(site, width=width)
    text, room = page.evaluate(
        """() => {
            const input = document.querySelector("#search-input");
            const style = getComputedStyle(input);
            const context = document.createElement("canvas").getContext("2d");
            context.font = style.font;
            const room = input.clientWidth - parseFloat(style.paddingLeft)
                - parseFloat(style.paddingRight);
            return [context.measureText(input.placeholder).width, room];
        }"""
    )
    # with room to spare: other systems' fonts are wider than this Chromium's
    assert text <= 0.8 * room, (text, room)
