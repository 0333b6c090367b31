"""CoinMarketCap snapshots and logos, history import, dashboard and search."""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from werkzeug import Response

from relay.history import HistoryError, import_history
from relay.sources.cmc import store as coin_store
from tests.hostile import bounded_memory
from tests.upstreams import SAMPLES, FakeCMC, cmc_listing, png

IN = "/relay-api/v1/relay-in/cmc"
OUT = "/relay-api/v1/relay-out"
NOW = datetime(2020, 6, 30, 9, 45, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cmc():
    fake = FakeCMC()
    yield fake
    fake.stop()


@pytest.fixture
def config(config, cmc):
    return config.replace(cmc_url=cmc.url, cmc_api_key="test-cmc-key")


@pytest.fixture
def clock_now():
    return {"now": NOW}


@pytest.fixture
def app(make_app, config, clock_now):
    ids = (uuid.UUID(int=n) for n in itertools.count(1))
    return make_app(config, now=lambda: clock_now["now"], uuidgen=lambda: next(ids))


def scalar(conn, query, args=None):
    return conn.execute(query, args).fetchone()[0]


def test_a_snapshot_of_the_recorded_listings(app, cmc, conn, in_headers):
    cmc.raw_listings = (SAMPLES / "cmc_listings_latest_2020-06-30.json").read_text()

    resp = app.post(IN, headers=in_headers, status=201)

    data = resp.json["data"]
    assert data["processed"] == 10
    assert data["snapshot"] == str(uuid.UUID(int=1))
    assert cmc.requests[0]["limit"] == "200" and cmc.requests[0]["convert"] == "USD"
    btc = conn.execute(
        "SELECT name, symbol, slug, rank, price::text, percent_change_30d "
        "FROM coin WHERE cmc_id = 1"
    ).fetchone()
    assert btc == ("Bitcoin", "BTC", "bitcoin", 1, "9188.66264947", None)  # 2020: no 30d field
    assert scalar(conn, "SELECT count(*) FROM cmc_quote") == 10
    assert scalar(conn, "SELECT taken_at FROM cmc_snapshot") == NOW
    day = conn.execute(
        "SELECT day, open, close FROM coin_daily JOIN coin ON coin.id = coin_id WHERE cmc_id = 1"
    ).fetchone()
    assert day == (date(2020, 6, 30), Decimal("9188.66264947"), Decimal("9188.66264947"))


def test_coins_are_upserted_by_id_and_each_run_is_a_snapshot(app, cmc, conn, in_headers, clock_now):
    cmc.listings = [cmc_listing(1, "Bitcoin", "BTC", 1, "9000.5")]
    app.post(IN, headers=in_headers, status=201)
    cmc.listings = [cmc_listing(1, "Bitcoin Renamed", "BTC", 1, "9100.25")]
    clock_now["now"] = NOW + timedelta(hours=1)
    app.post(IN, headers=in_headers, status=201)

    assert conn.execute("SELECT cmc_id, name FROM coin").fetchall() == [(1, "Bitcoin Renamed")]
    assert scalar(conn, "SELECT count(*) FROM cmc_snapshot") == 2
    assert scalar(conn, "SELECT count(*) FROM cmc_quote") == 2
    # The day's row grew like a candle: first price opens, last closes.
    assert conn.execute("SELECT open, high, low, close FROM coin_daily").fetchone() == (
        Decimal("9000.5"), Decimal("9100.25"), Decimal("9000.5"), Decimal("9100.25"),
    )  # fmt: skip


def test_logos_are_downloaded_once_and_stored_once(app, cmc, conn, in_headers, httpserver):
    downloads = []

    def image(seed):
        def handle(request):
            downloads.append(request.path)
            return Response(png(seed), content_type="image/png")

        return handle

    for path, seed in (("/img/1.png", 1), ("/img/2.png", 2), ("/img/2-copy.png", 2)):
        httpserver.expect_request(path).respond_with_handler(image(seed))
    cmc.listings = [cmc_listing(i, f"Coin {i}", f"C{i}", i, "1.5") for i in (1, 2, 3, 4)]
    cmc.logos = {
        1: httpserver.url_for("/img/1.png"),
        2: httpserver.url_for("/img/2.png"),
        3: httpserver.url_for("/img/2-copy.png"),  # another URL, the same bytes
        4: httpserver.url_for("/img/1.png"),  # the same URL as coin 1
    }

    resp = app.post(IN, headers=in_headers, status=201)

    assert resp.json["data"]["logos"] == {"stored": 4, "failed": 0, "complete": True}
    assert sorted(downloads) == ["/img/1.png", "/img/2-copy.png", "/img/2.png"]
    assert scalar(conn, "SELECT count(*) FROM logo") == 2
    assert scalar(conn, "SELECT count(DISTINCT logo_id) FROM coin") == 2
    # The next snapshot asks for no logo at all.
    info_calls = len([r for r in cmc.requests if r["path"].endswith("/info")])
    app.post(IN, headers=in_headers, status=201)
    assert len([r for r in cmc.requests if r["path"].endswith("/info")]) == info_calls
    assert len(downloads) == 3


def test_a_logo_that_fails_does_not_fail_the_snapshot(app, cmc, conn, in_headers, httpserver):
    httpserver.expect_request("/img/ok.png").respond_with_data(png(9), content_type="image/png")
    httpserver.expect_request("/img/gone.png").respond_with_data("nope", status=404)
    httpserver.expect_request("/img/page.png").respond_with_data("<html>", content_type="text/html")
    cmc.listings = [cmc_listing(i, f"Coin {i}", f"C{i}", i, "2") for i in (1, 2, 3)]
    cmc.logos = {
        1: httpserver.url_for("/img/ok.png"),
        2: httpserver.url_for("/img/gone.png"),
        3: httpserver.url_for("/img/page.png"),
    }
    resp = app.post(IN, headers=in_headers, status=201)
    assert resp.json["data"]["processed"] == 3
    assert resp.json["data"]["logos"] == {"stored": 1, "failed": 2, "complete": False}


@pytest.mark.parametrize(
    ("error", "status", "words"),
    [
        ((401, 1001, "This API Key is invalid."), 502, "API key"),
        ((402, 1003, "Your API Key must be activated."), 502, "API key"),
        ((429, 1008, "You've exceeded your API Key's HTTP request rate limit."), 503, "rate limit"),
        ((400, 400, 'Invalid value for "limit"'), 502, "HTTP 400"),
    ],
)
def test_coinmarketcap_errors_are_clear(app, cmc, conn, in_headers, sleeps, error, status, words):
    cmc.error = error
    resp = app.post(IN, headers=in_headers, status=status)
    assert words in resp.json["message"]
    assert "test-cmc-key" not in resp.text
    assert scalar(conn, "SELECT count(*) FROM coin") == 0


def _listing_quoted(quote) -> str:
    item = json.loads(json.dumps(cmc_listing(1, "Bitcoin", "BTC", 1, "9000"), default=str))
    return json.dumps({"status": {"error_code": 0}, "data": [{**item, "quote": quote}]})


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("null", "answer has no data"),
        ("5", "answer has no data"),
        (json.dumps({"status": "oops", "data": 5}), "listings data is not a list"),
        (_listing_quoted(["USD"]), "no USD quote"),
        (_listing_quoted("USD"), "no USD quote"),
    ],
    ids=["null", "number", "status-string", "quote-list", "quote-string"],
)
def test_answers_of_another_shape_are_502_naming_what_is_wrong(
    app, cmc, conn, in_headers, body, words
):
    cmc.raw_listings = body
    resp = app.post(IN, headers=in_headers, status=502)
    assert resp.json["message"].startswith("Bad Gateway: CoinMarketCap")
    assert words in resp.json["message"]
    assert scalar(conn, "SELECT count(*) FROM coin") == 0


# -- history import ---------------------------------------------------------------------

START = date(2022, 11, 20)


def write_history(path: Path, coins: dict[str, tuple[str, list[str | None]]]) -> Path:
    """Write the widely shared layout: SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["SNo", "Name", "Symbol", "Date", "High", "Low", "Open", "Close",
                         "Volume", "Marketcap"])  # fmt: skip
        n = 0
        for name, (symbol, closes) in coins.items():
            for offset, close in enumerate(closes):
                if close is None:
                    continue
                n += 1
                day = START + timedelta(days=offset)
                writer.writerow([n, name, symbol, f"{day} 23:59:59", close, close, close, close,
                                 f"{1000 + offset}.5", f"{Decimal(close) * 1000}"])  # fmt: skip
    return path


def closes(base: str, step: str, days: int = 35, missing: tuple[int, ...] = ()) -> list:
    return [None if i in missing else f"{Decimal(base) + Decimal(step) * i}" for i in range(days)]


@pytest.fixture
def history(tmp_path, database_url, clock_now):
    # the history's last day is today: a later date would be in the future (400)
    clock_now["now"] = datetime(2022, 12, 24, 12, tzinfo=UTC)
    path = write_history(
        tmp_path / "coins.csv",
        {
            "Bitcoin": ("BTC", closes("16000", "10")),
            "Ethereum": ("ETH", closes("1200", "-5")),
            "Dogecoin": ("DOGE", closes("0.08", "0.001", missing=(4,))),  # no close 30 days back
            "Bitcoin Cash": ("BCH", closes("100", "0")),
        },
    )
    assert import_history(database_url, path) == (139, 139)
    return path


LAST = START + timedelta(days=34)  # 2022-12-24


def test_importing_the_same_file_twice_changes_nothing(history, database_url, conn):
    assert import_history(database_url, history) == (139, 0)
    assert scalar(conn, "SELECT count(*) FROM coin_daily") == 139
    assert scalar(conn, "SELECT count(*) FROM coin") == 4


def test_import_history_command(tmp_path, database_url, conn):
    folder = tmp_path / "daily"
    folder.mkdir()
    write_history(folder / "coin_Bitcoin.csv", {"Bitcoin": ("BTC", closes("1", "1", days=3))})
    write_history(folder / "coin_Ethereum.csv", {"Ethereum": ("ETH", closes("2", "1", days=2))})
    env = {**os.environ, "DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "relay", "import-history", str(folder)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "read 5 daily rows, stored 5 new" in done.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("Name,Symbol,Date,Close\nBitcoin,BTC,yesterday,1\n")
    done = subprocess.run(
        [sys.executable, "-m", "relay", "import-history", str(bad)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "bad.csv line 2" in done.stderr
    down = subprocess.run(
        [sys.executable, "-m", "relay", "import-history", str(folder)], cwd=ROOT,
        env={**env, "DATABASE_URL": "postgresql://relay:secret-pw@127.0.0.1:1/relay"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert down.returncode == 1 and "the database is unreachable" in down.stderr
    assert "Traceback" not in down.stderr and "secret-pw" not in down.stderr


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"Name,Symbol,Date,Close\nBitcoin,BTC,2999-01-01,9\n", " line 2: date 2999-01-01 is"),
        (b"Name,Symbol,Date,Close\n,BTC,2022-12-01,1\n", " line 2: name is empty"),
        (b"Name,Symbol,Date,Close\nBitcoin,,2022-12-01,1\n", " line 2: symbol is empty"),
        (b"Name,Symbol,Date,Close\nBitcoin,BTC,2022-12-01,1\nBit\xffcoin,BTC,2022-12-02,1\n",
         " line 3: not UTF-8 text"),
        (b"Name,Symbol,Date,Close\nBitcoin,BTC,2022-12-01," + b"1" * 200_000 + b"\n",
         " line 2: field larger than field limit"),
    ],
    ids=["future", "no-name", "no-symbol", "not-utf-8", "huge-field"],
)  # fmt: skip
def test_a_history_line_that_cannot_be_a_day_is_refused_naming_it(
    tmp_path, database_url, conn, content, words
):
    path = tmp_path / "h.csv"
    path.write_bytes(content)
    with pytest.raises(HistoryError, match=re.escape(f"h.csv{words}")):
        import_history(database_url, path)
    assert scalar(conn, "SELECT count(*) FROM coin_daily") == 0


def test_a_snapshot_adopts_imported_coins(history, app, cmc, conn, in_headers):
    cmc.listings = [cmc_listing(1, "Bitcoin", "BTC", 1, "16500")]
    app.post(IN, headers=in_headers, status=201)
    assert scalar(conn, "SELECT count(*) FROM coin WHERE symbol = 'BTC'") == 1
    assert scalar(conn, "SELECT cmc_id FROM coin WHERE symbol = 'BTC'") == 1


# -- dashboard ---------------------------------------------------------------------------


def pct(now: str, then: str) -> str:
    return f"{((Decimal(now) / Decimal(then) - 1) * 100).quantize(Decimal('0.0001'))}"


def dashboard(app, headers, status=200, **query):
    return app.get(f"{OUT}/dashboard", query, headers=headers, status=status)


def test_dashboard_rows_worked_out_by_hand(history, app, out_headers):
    data = dashboard(app, out_headers, date=str(LAST), order_by="price").json["data"]
    assert data["date"] == "2022-12-24" and data["total"] == 4
    btc = next(r for r in data["rows"] if r["symbol"] == "BTC")
    # BTC closes 16000 + 10 x day: 16340 on the 34th day, 16330, 16270 and 16040 before.
    assert btc == {
        "id": btc["id"],
        "name": "Bitcoin",
        "symbol": "BTC",
        "logo": None,
        "price": "16340",
        "change_24h": pct("16340", "16330"),
        "change_7d": pct("16340", "16270"),
        "change_1m": pct("16340", "16040"),
        "changes_from": "daily_closes",  # imported history: no snapshot's changes
        "volume_24h": "1034.5",
        "market_cap": "16340000",
    }
    doge = next(r for r in data["rows"] if r["symbol"] == "DOGE")
    assert doge["change_1m"] is None  # the close 30 days before is missing


FIELDS = {
    "crypto": "name",
    "price": "price",
    "24h": "change_24h",
    "7d": "change_7d",
    "1m": "change_1m",
    "24h-volume": "volume_24h",
    "market_cap": "market_cap",
}


@pytest.mark.parametrize(
    ("order_by", "key"),
    [
        ("crypto", lambda r: r["name"].lower()),
        ("price", lambda r: Decimal(r["price"])),
        ("24h", lambda r: Decimal(r["change_24h"])),
        ("7d", lambda r: Decimal(r["change_7d"])),
        ("1m", lambda r: Decimal(r["change_1m"])),
        ("24h-volume", lambda r: Decimal(r["volume_24h"])),
        ("market_cap", lambda r: Decimal(r["market_cap"])),
    ],
)
@pytest.mark.parametrize("order_type", ["asc", "desc"])
def test_dashboard_orders_by_every_column_with_nulls_last(
    history, app, out_headers, order_by, key, order_type
):
    rows = dashboard(
        app, out_headers, date=str(LAST), order_by=order_by, order_type=order_type
    ).json["data"]["rows"]
    field = FIELDS[order_by]
    present = [r for r in rows if r[field] is not None]
    absent = [r for r in rows if r[field] is None]
    assert rows == present + absent  # nulls last, in both directions
    assert present == sorted(present, key=key, reverse=order_type == "desc")
    if order_by == "1m":
        assert [r["symbol"] for r in absent] == ["DOGE"]


def test_dashboard_id_lists_limit_offset_and_empty_days(history, app, cmc, in_headers, out_headers):
    rows = dashboard(app, out_headers, id="btc,Eth", order_by="crypto", order_type="asc").json[
        "data"
    ]["rows"]
    assert [r["symbol"] for r in rows] == ["BTC", "ETH"]
    page = dashboard(app, out_headers, order_by="crypto", order_type="asc", limit=2, offset=1)
    assert page.json["data"]["total"] == 4
    assert [r["name"] for r in page.json["data"]["rows"]] == ["Bitcoin Cash", "Dogecoin"]
    dashboard(app, out_headers, status=204, date="2021-01-01")
    dashboard(app, out_headers, status=204, id="NOPE")


def test_a_symbol_means_the_best_ranked_coin(history, app, cmc, in_headers, out_headers, clock_now):
    clock_now["now"] = datetime(2022, 12, 24, 12, tzinfo=UTC)
    cmc.listings = [
        cmc_listing(1, "Bitcoin", "BTC", 1, "16340"),
        cmc_listing(9999, "Bitcoin Clone", "BTC", 900, "0.01"),
    ]
    app.post(IN, headers=in_headers, status=201)
    rows = dashboard(app, out_headers, id="BTC", date=str(LAST)).json["data"]["rows"]
    assert [r["name"] for r in rows] == ["Bitcoin"]
    bitcoin = rows[0]["id"]
    # By coin id (what a search hit gives): the other one, or both
    (hit,) = search(app, out_headers, "clone").json["data"]["results"]
    rows = dashboard(app, out_headers, coin=str(hit["id"])).json["data"]["rows"]
    assert [(r["id"], r["name"]) for r in rows] == [(hit["id"], "Bitcoin Clone")]
    rows = dashboard(app, out_headers, coin=f"{hit['id']}, {bitcoin}").json["data"]["rows"]
    assert sorted(r["name"] for r in rows) == ["Bitcoin", "Bitcoin Clone"]
    dashboard(app, out_headers, coin="999999", status=204)


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"order_by": "volume"}, "order_by"),
        ({"order_type": "up"}, "order_type"),
        ({"date": "24/12/2022"}, "date"),
        ({"limit": "0"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"id": "BTC;DROP TABLE coin"}, "id"),
        ({"coin": "0"}, "coin"),
        ({"coin": "BTC"}, "coin"),
        ({"coin": "9223372036854775808"}, "coin"),
        ({"coin": ",".join(["1"] * 21)}, "coin"),
        ({"coin": "1", "id": "BTC"}, "not both"),
    ],
)
def test_dashboard_bad_parameters(history, app, out_headers, query, named):
    resp = dashboard(app, out_headers, status=400, **query)
    assert named in resp.json["message"]


# -- search and logos --------------------------------------------------------------------


@pytest.fixture
def listed(app, cmc, in_headers, httpserver):
    httpserver.expect_request("/img/btc.png").respond_with_data(png(1), content_type="image/png")
    cmc.listings = [
        cmc_listing(1, "Bitcoin", "BTC", 1, "9000"),
        cmc_listing(1831, "Bitcoin Cash", "BCH", 5, "230"),
        cmc_listing(3717, "Wrapped Bitcoin", "WBTC", 15, "9000"),
        cmc_listing(5000, "BTC Standard Hashrate Token", "BTCST", 60, "10"),
        cmc_listing(6000, "Tether", "USDT", 3, "1"),
    ]
    cmc.logos = {1: httpserver.url_for("/img/btc.png")}
    app.post(IN, headers=in_headers, status=201)


def search(app, headers, name, status=200):
    return app.get(f"{OUT}/search", {"name": name}, headers=headers, status=status)


def test_search_ranks_exact_symbol_then_name_then_prefix_then_substring(listed, app, out_headers):
    hits = search(app, out_headers, "btc").json["data"]["results"]
    assert [h["symbol"] for h in hits] == ["BTC", "BTCST", "WBTC"]
    assert hits[0] == {
        "id": hits[0]["id"], "name": "Bitcoin", "symbol": "BTC", "slug": "bitcoin",
        "logo": f"/relay-api/v1/relay-out/coins/{hits[0]['id']}/logo",
    }  # fmt: skip
    hits = search(app, out_headers, "BITCOIN").json["data"]["results"]
    assert [h["name"] for h in hits] == ["Bitcoin", "Bitcoin Cash", "Wrapped Bitcoin"]


def test_search_finds_nothing_204_and_needs_a_name(listed, app, out_headers):
    search(app, out_headers, "zzz", status=204)
    search(app, out_headers, "%", status=204)  # LIKE metacharacters are literal
    search(app, out_headers, "_", status=204)
    app.get(f"{OUT}/search", headers=out_headers, status=400)
    search(app, out_headers, "", status=400)


def test_logo_bytes_etag_and_304(listed, app, out_headers):
    resp = app.get(f"{OUT}/assets/btc/logo", headers=out_headers)
    assert resp.body == png(1)
    assert resp.content_type == "image/png"
    assert resp.headers["Cache-Control"] == "private, max-age=86400"
    etag = resp.headers["ETag"]
    assert etag == '"' + hashlib.sha256(png(1)).hexdigest()[:40] + '"'  # the stored digest's
    again = app.get(f"{OUT}/assets/BTC/logo", headers={**out_headers, "If-None-Match": etag})
    assert again.status_int == 304 and again.body == b""
    app.get(f"{OUT}/assets/USDT/logo", headers=out_headers, status=404)


# Symbols come from upstream: anything at all, and shared by several coins.
HOSTILE = ["../../relay-in?source=ecb&x=", "..", ".", "A$B", "a/b", "%2e%2e", "BTC#x", "é", "..",
           "A$B"]  # fmt: skip


def test_each_coins_logo_path_leads_to_its_own_logo_whatever_its_symbol(app, conn, out_headers):
    images = {}
    for rank, symbol in enumerate(HOSTILE, 1):
        images[rank] = png(rank)
        logo_id = conn.execute(
            "INSERT INTO logo (sha256, content_type, data) VALUES (sha256(%s), 'image/png', %s) "
            "RETURNING id",
            (images[rank], images[rank]),
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO coin (cmc_id, name, symbol, slug, rank, logo_id) "
            "VALUES (%(rank)s, 'Trap ' || %(rank)s, %(symbol)s, 'trap', %(rank)s, %(logo)s)",
            {"rank": rank, "symbol": symbol, "logo": logo_id},
        )
        conn.execute(
            "INSERT INTO coin_daily (coin_id, day, close) VALUES (%s, '2020-06-30', 1)", (rank,)
        )
    rows = dashboard(app, out_headers).json["data"]["rows"]
    hits = search(app, out_headers, "trap").json["data"]["results"]
    assert len(rows) == len(hits) == len(HOSTILE)
    for row in rows + hits:  # each coin its own path, by id, in both answers
        assert row["logo"] == f"/relay-api/v1/relay-out/coins/{row['id']}/logo", row
        assert app.get(row["logo"], headers=out_headers).body == images[row["id"]]
    # The symbol route gives the best-ranked coin's, for coins that share a symbol too.
    assert app.get(f"{OUT}/assets/A%24B/logo", headers=out_headers).body == images[4]
    app.get(f"{OUT}/coins/0/logo", headers=out_headers, status=400)
    app.get(f"{OUT}/coins/abc/logo", headers=out_headers, status=400)
    app.get(f"{OUT}/coins/9223372036854775808/logo", headers=out_headers, status=400)
    app.get(f"{OUT}/coins/{'9' * 5000}/logo", headers=out_headers, status=400)
    app.get(f"{OUT}/coins/999/logo", headers=out_headers, status=404)


def test_dashboard_for_5000_coins_is_served_by_indexes(conn):
    conn.execute(
        """
        INSERT INTO coin (cmc_id, name, symbol, slug, rank)
        SELECT i, 'Coin ' || i, 'C' || i, 'coin-' || i, i FROM generate_series(1, 5000) AS i
        """
    )
    conn.execute(
        """
        INSERT INTO coin_daily (coin_id, day, close, volume, market_cap)
        SELECT c.id, d::date, 1 + c.id * 0.001 + extract(day FROM d) * 0.01, 100, 1000
        FROM coin AS c, generate_series(date '2022-11-01', date '2022-12-24', interval '1 day') AS d
        """
    )
    conn.execute("ANALYZE coin_daily")
    conn.execute("ANALYZE coin")

    query = coin_store.query(coin_store.DASHBOARD, "24h", descending=True)
    args = {"day": date(2022, 12, 24), "symbols": None, "coins": None, "limit": 100, "offset": 0}
    plan = "\n".join(r[0] for r in conn.execute(b"EXPLAIN " + query, args))
    assert "Seq Scan on coin_daily" not in plan, plan
    assert "coin_daily_day_idx" in plan or "coin_daily_pkey" in plan, plan


def listing_pages(cmc) -> list[tuple[int, int]]:
    return [
        (int(r["start"]), int(r["limit"]))
        for r in cmc.requests
        if r["path"] == "/v1/cryptocurrency/listings/latest"
    ]


def test_the_whole_5000_coin_listing_is_paged_into_one_snapshot(
    make_app, config, cmc, conn, in_headers
):
    cmc.listings = [cmc_listing(i, f"Coin {i}", f"C{i}", i, f"{i}.25") for i in range(1, 5001)]
    app = make_app(config.replace(cmc_limit=5000), now=lambda: NOW)
    with bounded_memory("5000 listings", 40):
        resp = app.post(IN, headers=in_headers, status=201)
    assert listing_pages(cmc) == [(1, 1000), (1001, 1000), (2001, 1000), (3001, 1000), (4001, 1000)]
    assert resp.json["data"]["processed"] == 5000
    assert scalar(conn, "SELECT coins FROM cmc_snapshot") == 5000
    assert scalar(conn, "SELECT count(*) FROM cmc_quote") == 5000
    assert scalar(conn, "SELECT count(*) FROM coin_daily") == 5000
    assert scalar(conn, "SELECT price FROM coin WHERE cmc_id = 4321") == Decimal("4321.25")


def test_a_coin_that_moves_between_pages_is_kept_once_and_a_short_page_ends(
    make_app, config, cmc, conn, in_headers
):
    listings = [cmc_listing(i, f"Coin {i}", f"C{i}", i, "1") for i in range(1, 1201)]
    # Coin 1000 slipped a rank between the two pages' requests: both pages list it.
    listings.insert(1000, cmc_listing(1000, "Coin 1000", "C1000", 1001, "2"))
    cmc.listings = listings
    app = make_app(config.replace(cmc_limit=3000), now=lambda: NOW)
    resp = app.post(IN, headers=in_headers, status=201)
    assert listing_pages(cmc) == [(1, 1000), (1001, 1000)]  # 201 < 1000: the end
    assert resp.json["data"]["processed"] == 1200
    assert scalar(conn, "SELECT coins FROM cmc_snapshot") == 1200
    # the first sighting is kept, whole
    assert scalar(conn, "SELECT (price, rank)::text FROM coin WHERE cmc_id = 1000") == "(1,1000)"


def test_a_limit_below_a_page_asks_for_just_that(make_app, config, cmc, conn, in_headers):
    cmc.listings = [cmc_listing(i, f"Coin {i}", f"C{i}", i, "1") for i in range(1, 21)]
    app = make_app(config.replace(cmc_limit=7), now=lambda: NOW)
    app.post(IN, headers=in_headers, status=201)
    assert listing_pages(cmc) == [(1, 7)]
    assert scalar(conn, "SELECT count(*) FROM coin") == 7


def test_logos_are_fetched_concurrently_up_to_the_relay_in_concurrency(
    make_app, config, cmc, conn, in_headers
):
    cmc.listings = [cmc_listing(i, f"Coin {i}", f"C{i}", i, "1") for i in range(1, 41)]
    cmc.logos = {i: cmc.logo_url(i) for i in range(1, 41)}
    cmc.logo_latency_s = 0.05
    port = cmc.url.rsplit(":", 1)[1]
    app = make_app(
        config.replace(cmc_logo_hosts=(f"127.0.0.1:{port}",), relay_in_concurrency=4),
        now=lambda: NOW,
    )
    resp = app.post(IN, headers=in_headers, status=201)
    assert resp.json["data"]["logos"] == {"stored": 40, "failed": 0, "complete": True}
    assert scalar(conn, "SELECT count(DISTINCT logo_id) FROM coin") == 40
    assert 2 <= cmc.max_logos_in_flight <= 4


# -- the dashboard's changes: CoinMarketCap's own on the latest snapshot's day --------------


def with_changes(listing: dict, h24, d7, d30) -> dict:
    """A listing whose quote carries these changes (JSON numbers, or absent for None)."""
    usd = listing["quote"]["USD"]
    for key, value in (("24h", h24), ("7d", d7), ("30d", d30)):
        usd.pop(f"percent_change_{key}", None)
        if value is not None:
            usd[f"percent_change_{key}"] = Decimal(value)
    return listing


def test_a_new_install_shows_coinmarketcaps_changes_digit_for_digit(
    app, cmc, in_headers, out_headers
):
    cmc.raw_listings = (SAMPLES / "cmc_listings_latest_2020-06-30.json").read_text()
    app.post(IN, headers=in_headers, status=201)
    # The changes as CoinMarketCap wrote them (the 2020 listings have no 30d change).
    listings = json.loads(cmc.raw_listings, parse_float=str)["data"]
    sent = {
        coin["symbol"]: (
            coin["quote"]["USD"]["percent_change_24h"],
            coin["quote"]["USD"]["percent_change_7d"],
        )
        for coin in listings
    }
    data = dashboard(app, out_headers, limit=100).json["data"]
    assert data["date"] == "2020-06-30" and data["total"] == 10 == len(sent)
    for row in data["rows"]:
        assert (row["change_24h"], row["change_7d"]) == sent[row["symbol"]], row
        assert row["change_1m"] is None and row["changes_from"] == "cmc_snapshot"
    assert any(row["change_24h"] == "-0.0920171" for row in data["rows"])


def test_past_days_show_the_changes_from_closes_falling_back_to_the_snapshots_per_row(
    history, app, cmc, in_headers, out_headers, clock_now
):
    # The history's last day (its closes unchanged): BTC and DOGE with CoinMarketCap's
    # changes, ETH without any; BCH not listed.
    cmc.listings = [
        with_changes(cmc_listing(1, "Bitcoin", "BTC", 1, "16340"), "2.123456789012", "-3.5",
                     "12.25"),
        with_changes(cmc_listing(74, "Dogecoin", "DOGE", 9, "0.114"), "0.5", "1.25", "30.125"),
        with_changes(cmc_listing(1027, "Ethereum", "ETH", 2, "1030"), None, None, None),
    ]  # fmt: skip
    app.post(IN, headers=in_headers, status=201)
    rows = {r["symbol"]: r for r in dashboard(app, out_headers).json["data"]["rows"]}
    shown = {s: (r["change_24h"], r["change_7d"], r["change_1m"], r["changes_from"])
             for s, r in rows.items()}  # fmt: skip
    assert shown == {
        "BTC": ("2.123456789012", "-3.5", "12.25", "cmc_snapshot"),
        "DOGE": ("0.5", "1.25", "30.125", "cmc_snapshot"),
        "ETH": (pct("1030", "1035"), pct("1030", "1065"), pct("1030", "1180"), "daily_closes"),
        "BCH": ("0.0000", "0.0000", "0.0000", "daily_closes"),
    }
    # Ordered by what is shown, in both directions.
    for order_type, symbols in (("desc", ["BTC", "DOGE", "BCH", "ETH"]),
                                ("asc", ["ETH", "BCH", "DOGE", "BTC"])):  # fmt: skip
        rows = dashboard(app, out_headers, order_by="24h", order_type=order_type).json["data"]
        assert [r["symbol"] for r in rows["rows"]] == symbols, order_type

    # A day later the history's last day is a past day: its closes, where they hold.
    clock_now["now"] = datetime(2022, 12, 25, 12, tzinfo=UTC)
    cmc.listings = [
        with_changes(cmc_listing(1, "Bitcoin", "BTC", 1, "16350"), "0.0612", "1", "2"),
    ]
    app.post(IN, headers=in_headers, status=201)
    rows = dashboard(app, out_headers, date=str(LAST)).json["data"]["rows"]
    shown = {r["symbol"]: (r["change_24h"], r["change_7d"], r["change_1m"], r["changes_from"])
             for r in rows}  # fmt: skip
    assert shown == {
        "BTC": (pct("16340", "16330"), pct("16340", "16270"), pct("16340", "16040"),
                "daily_closes"),
        # no close 30 days before: the snapshot's changes, all three
        "DOGE": ("0.5", "1.25", "30.125", "cmc_snapshot"),
        "ETH": (pct("1030", "1035"), pct("1030", "1065"), pct("1030", "1180"), "daily_closes"),
        "BCH": ("0.0000", "0.0000", "0.0000", "daily_closes"),
    }  # fmt: skip
    latest = dashboard(app, out_headers).json["data"]
    assert latest["date"] == "2022-12-25"
    assert [(r["symbol"], r["change_24h"], r["changes_from"]) for r in latest["rows"]] == [
        ("BTC", "0.0612", "cmc_snapshot")
    ]
