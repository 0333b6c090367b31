"""A relay-in works on several symbols at once, fairly, and loses or doubles nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from pytest_httpserver import HTTPServer

from tests.upstreams import FakeBinance, FakeCoinbase, make_coinbase_candles, make_klines

IN = "/relay-api/v1/relay-in/binance"
T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=25, seconds=30)
SYMBOLS = [f"S{i}USDT" for i in range(8)]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def upstream():
    """A threaded loopback server: requests in flight at once are answered at once."""
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


def rows_by_symbol(conn) -> dict[str, int]:
    return dict(
        conn.execute("SELECT symbol, count(*) FROM binance_candle GROUP BY symbol").fetchall()
    )


@pytest.mark.parametrize("concurrency", [1, 4])
def test_symbols_run_at_once_up_to_the_limit_and_every_row_arrives_once(
    make_app, config, conn, in_headers, upstream, concurrency
):
    binance = FakeBinance(upstream, latency_s=0.05)
    for index, symbol in enumerate(SYMBOLS):
        binance.add(symbol, make_klines(T0 + timedelta(hours=1), 1500, seed=index))
    app = make_app(
        config.replace(
            binance_url=upstream.url_for("/").rstrip("/"),
            binance_backfill_hours=25,
            relay_in_concurrency=concurrency,
        ),
        now=lambda: NOW,
    )

    resp = app.post_json(IN, {"symbols": SYMBOLS}, headers=in_headers, status=201)

    assert resp.json["data"]["processed"] == 8 * 1500
    assert rows_by_symbol(conn) == dict.fromkeys(SYMBOLS, 1500)
    # Each symbol: two kline pages (one fetched ahead while the other is stored); then the
    # eight tickers in one request (Binance weighs 1-20 symbols as 2).
    assert len(binance.requests) == 8 * 2 + 1
    tickers = [r for r in binance.requests if r["path"] == "/api/v3/ticker/24hr"]
    assert len(tickers) == 1 and sorted(json.loads(tickers[0]["symbols"])) == SYMBOLS
    assert conn.execute("SELECT count(*) FROM binance_ticker").fetchone()[0] == 8
    # At most `concurrency` symbols, each with at most one page fetched ahead.
    assert binance.max_in_flight <= 2 * concurrency
    if concurrency > 1:
        assert binance.max_in_flight > 2  # several symbols were in flight together


def test_when_the_budget_ends_the_next_call_starts_with_the_symbols_that_waited(
    make_app, config, conn, in_headers, httpserver
):
    binance = FakeBinance(httpserver)
    six = SYMBOLS[:6]
    for symbol in six:
        binance.add(symbol, make_klines(T0 + timedelta(hours=24), 60))
    # Each upstream answer takes a second of the four-second budget: four symbols' pages a
    # call (their tickers, asked for together at the end, then wait for the next call).
    app = make_app(
        config.replace(
            binance_url=httpserver.url_for("/").rstrip("/"),
            relay_in_budget_s=4,
            relay_in_concurrency=1,
        ),
        now=lambda: NOW,
        clock=lambda: float(len(binance.requests)),
    )
    done_per_call = []
    for _ in range(2):
        data = app.post_json(IN, {"symbols": six}, headers=in_headers).json["data"]
        assert data["complete"] is False
        done_per_call.append(
            sorted(s for s, entry in data["symbols"].items() if entry["processed"])
        )

    assert done_per_call == [six[0:4], six[4:6]]
    assert rows_by_symbol(conn) == dict.fromkeys(six, 60)


def test_a_symbol_that_fails_stops_the_rest_and_keeps_what_others_stored(
    make_app, config, conn, in_headers, httpserver
):
    binance = FakeBinance(httpserver)
    binance.add(SYMBOLS[0], make_klines(T0 + timedelta(hours=24), 30))
    app = make_app(
        config.replace(binance_url=httpserver.url_for("/").rstrip("/"), relay_in_concurrency=1),
        now=lambda: NOW,
    )
    # The first symbol has data, the second is unknown to Binance (-1121).
    resp = app.post_json(IN, {"symbols": SYMBOLS[:3]}, headers=in_headers, status=400)

    assert resp.json["message"] == "Bad Request: Invalid Symbol"
    assert rows_by_symbol(conn) == {SYMBOLS[0]: 30}
    assert [r["symbol"] for r in binance.requests].count(SYMBOLS[2]) == 0


def test_tickers_come_twenty_symbols_a_request_at_the_lowest_weight(
    make_app, config, conn, in_headers, httpserver
):
    binance = FakeBinance(httpserver)
    many = [f"C{i:02d}USDT" for i in range(45)]
    for symbol in many:
        binance.add(symbol, make_klines(T0 + timedelta(hours=25), 1))
    app = make_app(config.replace(binance_url=httpserver.url_for("/").rstrip("/")), now=lambda: NOW)

    app.post_json(IN, {"symbols": many}, headers=in_headers, status=201)

    batches = [
        json.loads(r["symbols"]) for r in binance.requests if r["path"] == "/api/v3/ticker/24hr"
    ]
    assert [len(batch) for batch in batches] == [20, 20, 5]
    assert sorted(s for batch in batches for s in batch) == many
    assert binance.used_weight == 45 * 2 + 3 * 2  # a kline page each, 2 per ticker batch
    assert conn.execute("SELECT count(*) FROM binance_ticker").fetchone()[0] == 45


def test_star_is_every_trading_symbol_and_star_quote_those_quoted_in_it(
    make_app, config, conn, in_headers, httpserver
):
    binance = FakeBinance(httpserver)
    # Binance lists some symbols relay cannot take (a non-ASCII name): they are left out.
    for symbol in ("ADABTC", "ADAUSDT", "BTCUSDT", "ETHUSDT", "XRPETH", "\u5e01\u5b89USDT"):
        binance.add(symbol, make_klines(T0 + timedelta(hours=25), 2))
    binance.halted = {"ETHUSDT"}
    app = make_app(config.replace(binance_url=httpserver.url_for("/").rstrip("/")), now=lambda: NOW)

    data = app.post_json(IN, {"symbols": ["*USDT"]}, headers=in_headers).json["data"]
    assert sorted(data["symbols"]) == ["ADAUSDT", "BTCUSDT"]  # ETHUSDT is not trading
    data = app.post_json(IN, {"symbols": ["*", "adabtc"]}, headers=in_headers).json["data"]
    assert sorted(data["symbols"]) == ["ADABTC", "ADAUSDT", "BTCUSDT", "XRPETH"]
    # The list is asked for once an hour, not once a call.
    infos = [r for r in binance.requests if r["path"] == "/api/v3/exchangeInfo"]
    assert len(infos) == 1
    # An explicit unknown symbol is still refused; a set that matches nothing is too.
    resp = app.post_json(IN, {"symbols": ["NOPEUSDT"]}, headers=in_headers, status=400)
    assert resp.json["message"] == "Bad Request: Invalid Symbol"
    resp = app.post_json(IN, {"symbols": ["*EUR"]}, headers=in_headers, status=400)
    assert resp.json["message"] == "Bad Request: no symbol matches"
    app.post_json(IN, {"symbols": ["*U/SD"]}, headers=in_headers, status=400)


def test_coinbase_star_is_every_online_product(make_app, config, conn, in_headers, httpserver):
    coinbase = FakeCoinbase(httpserver)
    for product in ("BTC-USD", "ETH-USD", "ETH-EUR", "OLD-USD"):
        coinbase.add(product, make_coinbase_candles(T0 + timedelta(hours=25, minutes=-3), 2))
    coinbase.delisted = {"OLD-USD"}
    app = make_app(
        config.replace(coinbase_url=httpserver.url_for("/").rstrip("/"), coinbase_backfill_hours=1),
        now=lambda: NOW,
    )
    coinbase_in = "/relay-api/v1/relay-in/coinbase"

    data = app.post_json(coinbase_in, {"symbols": ["*-USD"]}, headers=in_headers).json["data"]
    assert sorted(data["symbols"]) == ["BTC-USD", "ETH-USD"]
    data = app.post_json(coinbase_in, {"symbols": ["*"]}, headers=in_headers).json["data"]
    assert sorted(data["symbols"]) == ["BTC-USD", "ETH-EUR", "ETH-USD"]


@pytest.mark.parametrize(
    ("listing", "named"),
    [
        ({"symbols": [{"symbol": f"X{i}USDT", "status": "TRADING", "quoteAsset": "USDT"}
                      for i in range(5001)]}, "lists 5001 symbols, more than 5000"),
        ({"symbols": [{"symbol": "XUSDT", "status": "TRADING"}]},
         "exchangeInfo symbol #0 is malformed"),
        ({"symbols": "all"}, "exchangeInfo symbols are a str, not a list"),
        ([], "exchangeInfo is not an object"),
    ],
)  # fmt: skip
def test_a_listing_that_is_not_a_market_is_502(
    make_app, config, conn, in_headers, httpserver, listing, named
):
    httpserver.expect_request("/api/v3/exchangeInfo").respond_with_json(listing)
    app = make_app(config.replace(binance_url=httpserver.url_for("/").rstrip("/")), now=lambda: NOW)
    resp = app.post_json(IN, {"symbols": ["*"]}, headers=in_headers, status=502)
    assert named in resp.json["message"]
    assert rows_by_symbol(conn) == {}


class VirtualClock:
    """A monotonic clock that moves only when slept on (waits are asserted, not endured)."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_429_pauses_every_request_to_that_upstream_not_only_its_own(httpserver):
    from relay.sources.http import OutOfTime, UpstreamClient

    clock = VirtualClock()
    client = UpstreamClient("Binance", timeout_s=2, sleep=clock.sleep, clock=clock)
    httpserver.expect_ordered_request("/a").respond_with_data(
        "", status=429, headers={"Retry-After": "3"}
    )
    httpserver.expect_ordered_request("/b").respond_with_data("b")
    httpserver.expect_ordered_request("/a").respond_with_data("a")

    # Another symbol's request meets the 429 and gives up for now (one attempt)...
    client.max_attempts = 1
    with pytest.raises(Exception, match="HTTP 429"):
        client.get(httpserver.url_for("/a"), deadline=clock() + 60)
    client.max_attempts = 3
    # ...and this one, sent a second later, waits out the rest of the pause first.
    clock.now += 1
    assert client.get(httpserver.url_for("/b"), deadline=clock() + 60).content == b"b"
    assert clock.sleeps == [2.0]
    # A pause longer than what is left of the budget ends the run's fetching instead.
    client._resume_at = clock() + 30
    with pytest.raises(OutOfTime):
        client.get(httpserver.url_for("/a"), deadline=clock() + 10)


def test_a_budget_that_ends_during_a_request_is_complete_false_not_a_504(
    make_app, config, conn, in_headers, upstream
):
    binance = FakeBinance(upstream, latency_s=0.4)
    for symbol in SYMBOLS[:3]:
        binance.add(symbol, make_klines(T0 + timedelta(hours=24), 30))
    app = make_app(
        config.replace(
            binance_url=upstream.url_for("/").rstrip("/"),
            relay_in_budget_s=0.6,
            relay_in_concurrency=1,
        ),
        now=lambda: NOW,
    )

    resp = app.post_json(IN, {"symbols": SYMBOLS[:3]}, headers=in_headers)

    # The first symbol's page came in 0.4 s; the second's request was cut at the budget.
    assert resp.status_int == 201, resp.json
    assert resp.json["data"]["complete"] is False
    assert rows_by_symbol(conn) == {SYMBOLS[0]: 30}


def test_retry_after_cannot_pause_an_upstream_for_good(httpserver):
    from relay.sources.http import MAX_PAUSE_S, UpstreamClient

    clock = VirtualClock()
    client = UpstreamClient("Binance", timeout_s=2, sleep=clock.sleep, clock=clock)
    client.max_attempts = 1
    for header in ("1e400", "inf", "999999"):
        httpserver.expect_ordered_request("/a").respond_with_data(
            "", status=429, headers={"Retry-After": header}
        )
        with pytest.raises(Exception, match="HTTP 429"):
            client.get(httpserver.url_for("/a"), deadline=clock() + 10**7)
        assert 0 < client._resume_at - clock() <= MAX_PAUSE_S


def test_a_run_that_stored_nothing_before_its_budget_ended_is_not_fresh(
    make_app, config, conn, in_headers, upstream
):
    binance = FakeBinance(upstream, latency_s=0.5)
    binance.add(SYMBOLS[0], make_klines(T0 + timedelta(hours=24), 30))
    app = make_app(
        config.replace(binance_url=upstream.url_for("/").rstrip("/"), relay_in_budget_s=0.3),
        now=lambda: NOW,
    )
    data = app.post_json(IN, {"symbols": SYMBOLS[:1]}, headers=in_headers).json["data"]
    assert (data["processed"], data["complete"]) == (0, False)

    health = app.get("/health").json["data"]["sources"]["binance"]
    assert health["overdue"] is True and health["last_success"] is None


KILLED = """
import sys
import threading
from datetime import datetime

import webtest

from relay import db
from relay.app import create_app
from relay.config import Config
from tests.conftest import SECRET, bearer

url, binance, now, symbols = sys.argv[1:]
pool = db.make_pool(url, open=True, max_size=8)
config = Config(database_url=url, jwt_secrets=(SECRET,)).replace(
    binance_url=binance, binance_backfill_hours=60, relay_in_concurrency=4
)
app = webtest.TestApp(create_app(config, pool, now=lambda: datetime.fromisoformat(now)))
app.post_json(
    "/relay-api/v1/relay-in/binance", {"symbols": symbols.split(",")}, headers=bearer("relay:in")
)
"""


def test_a_run_killed_mid_way_leaves_every_symbol_resumable_without_loss_or_duplicate(
    make_app, config, conn, database_url, in_headers, upstream
):
    binance = FakeBinance(upstream, latency_s=0.3)
    first = T0 + timedelta(hours=1)
    for index, symbol in enumerate(SYMBOLS):
        binance.add(symbol, make_klines(first, 3000, seed=index))
    now = first + timedelta(minutes=3000, seconds=30)
    url = upstream.url_for("/").rstrip("/")
    killed = subprocess.Popen(
        [sys.executable, "-c", KILLED, database_url, url, now.isoformat(), ",".join(SYMBOLS)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while sum(rows_by_symbol(conn).values()) < 4000 and killed.poll() is None:
            assert time.monotonic() < deadline, "the run never stored four pages"
            time.sleep(0.02)
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(10)
    finally:
        killed.kill()
    at_kill = rows_by_symbol(conn)
    # Killed mid-way, several symbols in flight: whole pages only, never part of one.
    assert 4000 <= sum(at_kill.values()) < 8 * 3000, at_kill
    assert all(count % 1000 == 0 for count in at_kill.values()), at_kill
    assert len(at_kill) >= 2, at_kill

    app = make_app(
        config.replace(binance_url=url, binance_backfill_hours=60, relay_in_concurrency=4),
        now=lambda: now,
    )
    resp = app.post_json(IN, {"symbols": SYMBOLS}, headers=in_headers, status=201)

    # The killed run's locks went with its process; every symbol resumed where it stood.
    assert resp.json["data"]["processed"] == 8 * 3000 - sum(at_kill.values())
    assert resp.json["data"]["complete"] is True
    assert rows_by_symbol(conn) == dict.fromkeys(SYMBOLS, 3000)
    # each symbol's 3000 minutes, the first to the last, no other (the key forbids twice)
    spans = conn.execute(
        "SELECT symbol, min(open_time), max(open_time) FROM binance_candle GROUP BY symbol"
    ).fetchall()
    assert {row[1:] for row in spans} == {(first, first + timedelta(minutes=2999))}
    assert len(spans) == 8


def test_a_symbol_another_run_holds_is_409_naming_it_and_the_run_takes_no_lock(
    make_app, config, conn, database_url, in_headers, upstream
):
    binance = FakeBinance(upstream)
    for index, symbol in enumerate(SYMBOLS):
        binance.add(symbol, make_klines(NOW - timedelta(minutes=3), 2, seed=index))
    app = make_app(config.replace(binance_url=upstream.url_for("/").rstrip("/")), now=lambda: NOW)
    advisory = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid <> %s"
    with psycopg.connect(database_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(hashtext('binance'), hashtext('S5USDT'))")

        resp = app.post_json(IN, {"symbols": SYMBOLS}, headers=in_headers, status=409)

        assert resp.json["data"] == {"source": "binance", "symbol": "S5USDT"}
        # the seven it could take were let go with the refusal
        assert conn.execute(advisory, (other.info.backend_pid,)).fetchone()[0] == 0
        assert binance.requests == []
        # let go before closing: a closed session's locks are freed when its backend exits,
        # which may be a moment after close() returns
        other.execute("SELECT pg_advisory_unlock_all()")
    resp = app.post_json(IN, {"symbols": SYMBOLS}, headers=in_headers, status=201)
    assert resp.json["data"]["processed"] == 16


def test_a_whole_market_run_holds_one_lock_and_refuses_overlapping_runs_of_its_source(
    make_app, config, conn, database_url, in_headers, upstream
):
    """Thousands of symbol locks would fill PostgreSQL's shared lock table for everyone."""
    binance = FakeBinance(upstream, latency_s=0.1)
    market = [f"M{i:03d}USDT" for i in range(120)]  # more than MAX_SYMBOL_LOCKS
    for index, symbol in enumerate(market):
        binance.add(symbol, make_klines(NOW - timedelta(minutes=3), 2, seed=index))
    app = make_app(config.replace(binance_url=upstream.url_for("/").rstrip("/")), now=lambda: NOW)
    advisory = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid <> %s"
    source_lock = "pg_advisory_lock{}(hashtext('binance'), hashtext('*'))"

    with psycopg.connect(database_url, autocommit=True) as other:
        other.execute(f"SELECT {source_lock.format('_shared')}")  # a small run in progress
        resp = app.post_json(IN, {"symbols": ["*USDT"]}, headers=in_headers, status=409)
        assert resp.json["data"] == {"source": "binance", "symbol": "*"}
        other.execute("SELECT pg_advisory_unlock_all()")
        other.execute(f"SELECT {source_lock.format('')}")  # a whole-market run in progress
        resp = app.post_json(IN, {"symbols": ["M001USDT"]}, headers=in_headers, status=409)
        assert resp.json["data"] == {"source": "binance", "symbol": "*"}
        other.execute("SELECT pg_advisory_unlock_all()")

        done, held = threading.Event(), []
        worker = threading.Thread(
            target=lambda: (
                app.post_json(IN, {"symbols": ["*USDT"]}, headers=in_headers, status=201),
                done.set(),
            )
        )
        worker.start()
        while not done.wait(0.02):
            held.append(conn.execute(advisory, (other.info.backend_pid,)).fetchone()[0])
        worker.join(10)
    assert rows_by_symbol(conn) == dict.fromkeys(market, 2)
    assert max(held) == 2  # the source's lock and the run's own, whatever the symbol count


def test_a_listed_symbol_the_exchange_then_refuses_is_skipped_and_the_listing_renewed(
    make_app, config, conn, in_headers, upstream
):
    binance = FakeBinance(upstream)
    clock = {"now": NOW}
    for index, symbol in enumerate(SYMBOLS[:4]):
        binance.add(symbol, make_klines(NOW - timedelta(minutes=3), 2, seed=index))
    app = make_app(
        config.replace(binance_url=upstream.url_for("/").rstrip("/")), now=lambda: clock["now"]
    )
    app.post_json(IN, {"symbols": ["*"]}, headers=in_headers, status=201)
    for gone in ("S1USDT", "S2USDT"):  # delisted within the hour the listing is cached
        del binance.klines[gone]
    for index, symbol in enumerate(SYMBOLS[:4]):
        if symbol not in ("S1USDT", "S2USDT"):
            binance.klines[symbol] += make_klines(NOW - timedelta(minutes=1), 1, seed=index)
    clock["now"] = NOW + timedelta(minutes=1)

    resp = app.post_json(IN, {"symbols": ["*"]}, headers=in_headers, status=201)

    symbols = resp.json["data"]["symbols"]
    for gone in ("S1USDT", "S2USDT"):  # the second as well as the first
        assert symbols[gone]["complete"] is False
        assert "Binance listed it but refused it" in symbols[gone]["error"]
    assert {s: v["processed"] for s, v in symbols.items()} == {
        "S0USDT": 1, "S1USDT": 0, "S2USDT": 0, "S3USDT": 1,
    }  # fmt: skip
    listings = len([r for r in binance.requests if r["path"] == "/api/v3/exchangeInfo"])
    resp = app.post_json(IN, {"symbols": ["*"]}, headers=in_headers, status=204)
    assert len([r for r in binance.requests if r["path"] == "/api/v3/exchangeInfo"]) == listings + 1
    # A symbol the caller names and no listing offers is still the caller's 400.
    resp = app.post_json(IN, {"symbols": ["S2USDT"]}, headers=in_headers, status=400)
    assert resp.json["data"]["symbol"] == "S2USDT"
