"""Coinbase Exchange relay-in and relay-out: a loopback Coinbase, real PostgreSQL."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests

from relay.sources.coinbase.client import BURST, RATE_PER_S
from tests.upstreams import (
    SAMPLES,
    TOO_MANY_BUCKETS,
    FakeCoinbase,
    coinbase_ticker,
    make_coinbase_candles,
)

IN = "/relay-api/v1/relay-in/coinbase"
OUT = "/relay-api/v1/relay-out"
T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def coinbase(httpserver):
    return FakeCoinbase(httpserver)


@pytest.fixture
def clock_now():
    class Now:
        value = T0 + timedelta(hours=24, seconds=30)

        def __call__(self):
            return self.value

    return Now()


@pytest.fixture
def config(config, httpserver):
    return config.replace(coinbase_url=httpserver.url_for("/").rstrip("/"))


@pytest.fixture
def app(make_app, config, clock_now):
    return make_app(config, now=clock_now)


def relay_in(app, headers, symbols=("BTC-USD",), status=201):
    return app.post_json(IN, {"symbols": list(symbols)}, headers=headers, status=status)


def candle_rows(conn, symbol="BTC-USD"):
    return conn.execute(
        "SELECT open_time, open, high, low, close, volume FROM coinbase_candle "
        "WHERE symbol = %s ORDER BY open_time",
        (symbol,),
    ).fetchall()


def windows(coinbase) -> list[tuple[datetime, datetime]]:
    return [
        (datetime.fromisoformat(r["start"]), datetime.fromisoformat(r["end"]))
        for r in coinbase.requests
        if r["path"].endswith("/candles")
    ]


def test_the_recorded_candle_and_ticker_are_stored_digit_for_digit(
    make_app, config, coinbase, conn, httpserver, in_headers, out_headers
):
    recorded = (SAMPLES / "coinbase_candles_BTC-USDT_1h_2024-03-13_ccxt.json").read_text()
    ticker = (SAMPLES / "coinbase_ticker_BTC-USDT_2024-03-13_ccxt.json").read_text()
    row = json.loads(recorded, parse_float=str, parse_int=str)[0]
    coinbase.add("BTC-USDT", [row])
    coinbase.set_ticker("BTC-USDT", ticker)
    # The loopback speaks the recorded format: the same rows, numbers with the same digits.
    sent = requests.get(
        httpserver.url_for("/products/BTC-USDT/candles"),
        params={"granularity": 60, "start": "2024-03-13T10:00:00", "end": "2024-03-13T12:00:00"},
        timeout=5,
    ).text
    assert json.loads(sent, parse_float=Decimal) == json.loads(recorded, parse_float=Decimal)
    app = make_app(config, now=lambda: datetime(2024, 3, 13, 11, 10, 41, 500000, tzinfo=UTC))

    resp = relay_in(app, in_headers, ["btc-usdt"])

    assert resp.json["data"]["processed"] == 1
    assert [tuple(map(str, r[1:])) for r in candle_rows(conn, "BTC-USDT")] == [
        ("73243.33", "73402.47", "73241.5", "73370.65", "1.56794406")
    ]
    price = app.get(
        f"{OUT}/price", {"symbol": "BTC-USDT", "exchange": "coinbase"}, headers=out_headers
    ).json["data"]
    # The ticker (its last trade at 11:10:41.270099) is fresher than the 11:00 candle.
    assert price == {
        "symbol": "BTC-USDT",
        "quote": "USDT",
        "price": "73367.8",
        "as_of": "2024-03-13T11:10:41.270099Z",
    }
    stored = conn.execute("SELECT trade_id, size, bid, ask FROM coinbase_ticker").fetchone()
    assert (stored[0], str(stored[1]), str(stored[2]), str(stored[3])) == (
        18502105,
        "0.00730812",
        "73360.34",
        "73369.19",
    )


def test_backfill_walks_300_minute_windows_and_minutes_without_trades_stay_absent(
    app, coinbase, conn, in_headers
):
    quiet = frozenset(range(5, 10)) | frozenset(range(700, 1001))
    coinbase.add("BTC-USD", make_coinbase_candles(T0, 24 * 60 + 1, skip=quiet))

    resp = relay_in(app, in_headers)

    expected = 24 * 60 + 1 - len(quiet)
    assert resp.json["data"] == {
        "processed": expected,
        "complete": True,
        "symbols": {"BTC-USD": {"processed": expected, "complete": True}},
    }
    # now is T0 + 24 h + 30 s: windows of 300 minutes from T0 up to the current minute,
    # each starting after the last one's end however few rows it held.
    assert windows(coinbase) == [
        (T0 + i * 300 * MINUTE, min(T0 + (i * 300 + 299) * MINUTE, T0 + 1440 * MINUTE))
        for i in range(5)
    ]
    times = [r[0] for r in candle_rows(conn)]
    assert len(times) == expected == len(set(times))
    assert T0 + 5 * MINUTE not in times and T0 + 4 * MINUTE in times
    assert conn.execute("SELECT count(*) FROM coinbase_ticker").fetchone()[0] == 1


def test_the_open_minute_is_updated_in_place_not_duplicated(
    app, coinbase, conn, in_headers, clock_now
):
    clock_now.value = T0 + timedelta(minutes=59, seconds=20)
    rows = make_coinbase_candles(T0, 60)
    still_open = [*rows[-1][:4], "73263.00", "0.5"]  # the last minute, still trading
    coinbase.add("BTC-USD", [*rows[:-1], still_open])
    assert relay_in(app, in_headers).json["data"]["processed"] == 60

    clock_now.value = T0 + timedelta(minutes=60, seconds=10)
    coinbase.add("BTC-USD", [rows[-1], *make_coinbase_candles(T0 + 60 * MINUTE, 1)])
    resp = relay_in(app, in_headers)

    assert resp.json["data"]["processed"] == 2  # the finished minute and one new one
    stored = candle_rows(conn)
    assert len(stored) == 61
    assert (str(stored[59][4]), str(stored[59][5])) == (rows[-1][4], rows[-1][5])
    # The next window starts at the newest stored minute, which may have been open.
    assert windows(coinbase)[-1] == (T0 + 59 * MINUTE, T0 + 60 * MINUTE)
    relay_in(app, in_headers, status=204)  # nothing new at all


def test_a_failed_window_keeps_what_was_stored_and_the_next_run_resumes(
    app, coinbase, conn, in_headers, sleeps
):
    coinbase.add("BTC-USD", make_coinbase_candles(T0, 24 * 60 + 1))
    # The third window fails three times (every attempt): the run stops with a 502.
    coinbase.fail_on_call = {n: (503, '{"message":"unavailable"}') for n in (3, 4, 5)}

    resp = relay_in(app, in_headers, status=502)

    assert resp.json["message"].startswith("Bad Gateway: Coinbase answered HTTP 503")
    assert resp.json["data"]["processed"] == 600  # two whole windows
    assert len(candle_rows(conn)) == 600
    resp = relay_in(app, in_headers)
    times = [r[0] for r in candle_rows(conn)]
    assert len(times) == 24 * 60 + 1 == len(set(times))
    # It resumed at the newest stored minute, which came again unchanged: not counted.
    assert resp.json["data"]["processed"] == 24 * 60 + 1 - 600
    assert windows(coinbase)[-3][0] == T0 + 599 * MINUTE


def test_an_unknown_or_malformed_product_is_400_invalid_symbol(app, coinbase, in_headers):
    resp = relay_in(app, in_headers, ["DOGE-EUR"], status=400)
    assert resp.json["message"] == "Bad Request: Invalid Symbol"
    assert resp.json["data"]["symbol"] == "DOGE-EUR"
    assert len(coinbase.requests) == 1
    for bad in ("BTCUSD", "BTC-USD-X", "../BTC", "BTC-US D"):
        resp = relay_in(app, in_headers, [bad], status=400)
        assert resp.json["message"] == "Bad Request: Invalid Symbol"
    assert len(coinbase.requests) == 1  # refused before asking


def test_a_429_is_retried_after_a_pause(app, coinbase, conn, in_headers, sleeps):
    coinbase.add("BTC-USD", make_coinbase_candles(T0, 24 * 60 + 1))
    coinbase.fail_on_call = {1: (429, '{"message":"Public rate limit exceeded"}')}

    assert relay_in(app, in_headers).json["data"]["processed"] == 24 * 60 + 1

    assert len(windows(coinbase)) == 6  # the first window asked twice
    assert sleeps == [0.5]  # Coinbase sends no Retry-After: the first backoff step


def test_a_long_run_paces_itself_inside_the_public_limit(
    make_app, config, coinbase, conn, in_headers
):
    now = T0 + timedelta(hours=200)
    coinbase.add("BTC-USD", make_coinbase_candles(T0, 200 * 60 + 1))
    app = make_app(
        config.replace(relay_in_budget_s=60, coinbase_backfill_hours=200),
        now=lambda: now,
        sleep=time.sleep,
    )
    started = time.monotonic()

    resp = relay_in(app, in_headers)

    elapsed = time.monotonic() - started
    assert resp.json["data"]["processed"] == 200 * 60 + 1
    # 41 windows and a ticker: past the burst, paced under the public limit, never a 429.
    assert coinbase.throttled == 0
    assert len(coinbase.requests) == 42
    assert elapsed >= (42 - BURST) / RATE_PER_S - 0.5


@pytest.mark.parametrize(
    ("row", "named"),
    [
        ('[1763596800, 1.0, 2.0, 1.5, "NaN", 1]', "close is not finite"),
        ('[1763596800, 1.0, 2.0, 1.5, "abc", 1]', "close is not a number"),
        ("[1763596800, 1.0, 2.0, 1.5, 1e999999, 1]", "close is out of range"),
        ("[1763596830, 1.0, 2.0, 1.5, 1.5, 1]", "time is not the start of a minute"),
        ("[99999999999999, 1.0, 2.0, 1.5, 1.5, 1]", "time"),
        ("[1763596800, 3.0, 2.0, 2.5, 2.5, 1]", "inconsistent prices"),
        ("[1763596800, 1.0, 2.0]", "not a [time, low, high, open, close, volume] array"),
        ('{"message": "ok"}', "candles are a dict, not a list"),
    ],
)
def test_a_malformed_answer_is_502_naming_the_field_and_stores_nothing(
    make_app, config, conn, httpserver, in_headers, clock_now, row, named
):
    body = row if row.startswith("{") else f"[{row}]"
    httpserver.expect_request("/products/BTC-USD/candles").respond_with_data(
        body, content_type="application/json"
    )
    app = make_app(config, now=clock_now)

    resp = relay_in(app, in_headers, status=502)

    assert resp.json["message"].startswith("Bad Gateway: Coinbase")
    assert named in resp.json["message"]
    assert candle_rows(conn) == []


def test_price_profit_candles_and_symbols_answer_for_coinbase_as_for_binance(
    app, coinbase, conn, in_headers, out_headers, clock_now
):
    # Two products; BTC-USD has minutes without trades inside a 5-minute bucket.
    coinbase.add("BTC-USD", make_coinbase_candles(T0, 24 * 60 + 1, skip=frozenset({1, 3})))
    coinbase.add("ETH-USD", make_coinbase_candles(T0, 24 * 60 + 1, price="3000.00"))
    coinbase.set_ticker("BTC-USD", coinbase_ticker("73774.99", clock_now.value))
    relay_in(app, in_headers, ["BTC-USD", "ETH-USD"])
    coinbase_only = {"exchange": "coinbase"}

    symbols = app.get(f"{OUT}/symbols", coinbase_only, headers=out_headers).json["data"]
    assert symbols == {"symbols": ["BTC-USD", "ETH-USD"]}
    assert app.get(f"{OUT}/symbols", headers=out_headers).json["data"] == {"symbols": []}

    price = app.get(
        f"{OUT}/price", {"symbol": "btc-usd", **coinbase_only}, headers=out_headers
    ).json["data"]
    assert price["price"] == "73774.99"
    assert price["quote"] == "USD"  # the currency the price is in, named

    profit = app.get(
        f"{OUT}/profit",
        {"symbol": "BTC-USD", "value": "1000", **coinbase_only},
        headers=out_headers,
    ).json["data"]
    # 24 h before the ticker's time (T0 + 24 h + 30 s), the minute that opened at T0.
    assert profit["price_then"] == "73241.50"
    assert profit["price_now"] == "73774.99"
    assert profit["quote"] == "USD"

    bars = app.get(
        f"{OUT}/candles",
        {"symbol": "BTC-USD", "interval": "5m", "start": T0.isoformat(), **coinbase_only},
        headers=out_headers,
    ).json["data"]
    assert bars["quote"] == "USD"
    bars = bars["candles"]
    first = bars[0]
    rows = make_coinbase_candles(T0, 5, skip=frozenset({1, 3}))  # minutes 0, 2, 4
    assert first["time"] == "2026-11-20T00:00:00Z"
    assert first["open"] == rows[0][3]
    assert first["close"] == rows[-1][4]
    assert first["high"] == max(rows, key=lambda r: Decimal(r[2]))[2]
    assert first["low"] == min(rows, key=lambda r: Decimal(r[1]))[1]
    assert Decimal(first["volume"]) == sum(Decimal(r[5]) for r in rows)

    resp = app.get(
        f"{OUT}/price", {"symbol": "BTC-USD", "exchange": "kraken"}, headers=out_headers,
        status=400,
    )  # fmt: skip
    assert "exchange" in resp.json["message"]
    app.get(f"{OUT}/price", {"symbol": "BTCUSDT"}, headers=out_headers, status=404)


def test_too_many_buckets_is_what_the_loopback_refuses_and_relay_never_asks_it(
    httpserver, coinbase
):
    coinbase.add("BTC-USD", make_coinbase_candles(T0, 2))
    resp = requests.get(
        httpserver.url_for("/products/BTC-USD/candles"),
        params={"granularity": 60, "start": T0.isoformat(), "end": (T0 + 300 * MINUTE).isoformat()},
        timeout=5,
    )
    assert (resp.status_code, resp.json()["message"]) == (400, TOO_MANY_BUCKETS)


def test_a_quiet_product_resumes_after_the_windows_already_walked(
    app, coinbase, conn, in_headers, clock_now
):
    # Trades for the first two hours of the backfill, then nothing for 22 hours.
    coinbase.add("BTC-USD", make_coinbase_candles(T0, 120))
    relay_in(app, in_headers)
    assert len(windows(coinbase)) == 5
    walked = conn.execute("SELECT walked_to FROM coinbase_progress").fetchone()[0]
    assert walked == T0 + 24 * 60 * MINUTE  # the current minute, asked again next time

    clock_now.value += timedelta(minutes=1)
    relay_in(app, in_headers, status=204)

    # One window from where the walk ended, not five from the last minute that traded.
    assert windows(coinbase)[5:] == [(walked, walked + MINUTE)]
    assert len(candle_rows(conn)) == 120
