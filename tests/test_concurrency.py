"""A relay-in works on several symbols at once, fairly, and loses or doubles nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pytest_httpserver import HTTPServer

from tests.upstreams import FakeBinance, FakeCoinbase, make_coinbase_candles, make_klines

IN = "/relay-api/v1/relay-in/binance"
T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=25, seconds=30)
SYMBOLS = [f"S{i}USDT" for i in range(8)]


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
