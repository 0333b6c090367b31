"""Binance relay-in and relay-out: loopback Binance, real PostgreSQL."""

from __future__ import annotations

import decimal
import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from relay import candles
from relay.sources.binance import MARKET
from tests.upstreams import SAMPLES, FakeBinance, make_klines, make_ticker

IN = "/relay-api/v1/relay-in/binance"
OUT = "/relay-api/v1/relay-out"
T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)


@pytest.fixture
def binance(httpserver):
    return FakeBinance(httpserver)


@pytest.fixture
def clock_now():
    """A settable "now" for the app (relay-in backfill, weight minute)."""

    class Now:
        value = T0 + timedelta(hours=48, seconds=30)

        def __call__(self):
            return self.value

    return Now()


@pytest.fixture
def config(config, httpserver):
    return config.replace(binance_url=httpserver.url_for("/").rstrip("/"))


@pytest.fixture
def app(make_app, config, clock_now):
    return make_app(config, now=clock_now)


def relay_in(app, headers, symbols=("ADAUSDT",), status=201):
    return app.post_json(IN, {"symbols": list(symbols)}, headers=headers, status=status)


def candle_rows(conn, symbol="ADAUSDT"):
    return conn.execute(
        "SELECT open_time, open, high, low, close, volume FROM binance_candle "
        "WHERE symbol = %s ORDER BY open_time",
        (symbol,),
    ).fetchall()


def test_recorded_klines_and_ticker_are_stored_exactly(
    make_app, config, binance, conn, in_headers, out_headers
):
    klines = json.loads((SAMPLES / "binance_klines_BTCUSDT_1m_2021-10-22.json").read_text())
    ticker = json.loads((SAMPLES / "binance_ticker24hr_BTCUSDT_2021-10-22.json").read_text())
    binance.add("BTCUSDT", klines)
    binance.tickers["BTCUSDT"] = ticker
    app = make_app(config, now=lambda: datetime(2021, 10, 22, 23, 13, 30, tzinfo=UTC))

    resp = relay_in(app, in_headers, ["btcusdt"])

    assert resp.json["data"]["processed"] == 10
    rows = candle_rows(conn, "BTCUSDT")
    assert [str(r[4]) for r in rows] == [k[4] for k in klines]  # "60719.27000000" ...
    assert rows[0][0] == datetime(2021, 10, 22, 23, 3, tzinfo=UTC)
    # The first run backfilled 48 hours: startTime was now - 48 h, in milliseconds.
    assert binance.requests[0]["startTime"] == str(1634944410000 - 48 * 3_600_000)
    price = app.get(f"{OUT}/price", {"currency": "BTCUSDT"}, headers=out_headers).json["data"]
    # The ticker (closeTime 23:13:21.452) is fresher than the newest candle.
    assert price == {
        "symbol": "BTCUSDT",
        "quote": "USDT",
        "price": "60755.18000000",
        "as_of": "2021-10-22T23:13:21.452000Z",
    }


def test_backfill_pages_over_several_1000_candle_pages(app, binance, conn, in_headers):
    binance.add("ADAUSDT", make_klines(T0, 48 * 60 + 1))

    resp = relay_in(app, in_headers)

    # now is T0 + 48 h + 30 s: the window holds minutes 1 to 2880 after T0.
    assert resp.json["data"] == {
        "processed": 2880,
        "complete": True,
        "symbols": {"ADAUSDT": {"processed": 2880, "complete": True}},
    }
    kline_calls = [r for r in binance.requests if r["path"] == "/api/v3/klines"]
    t0_ms = int(T0.timestamp() * 1000)
    assert [int(r["startTime"]) for r in kline_calls] == [
        t0_ms + 30_000,
        t0_ms + 1001 * 60_000,
        t0_ms + 2001 * 60_000,
    ]
    assert [r["limit"] for r in kline_calls] == ["1000"] * 3
    assert len(candle_rows(conn)) == 48 * 60  # the minute at 00:00 is before the window
    assert conn.execute("SELECT count(*) FROM binance_ticker").fetchone()[0] == 1


def test_the_open_minute_is_updated_in_place_not_duplicated(
    app, binance, conn, in_headers, clock_now
):
    clock_now.value = T0 + timedelta(hours=1)
    klines = make_klines(T0, 60)
    partial = list(klines[-1])
    partial[4], partial[5] = "0.50500000", "7.00000000"  # the last minute, still open
    binance.add("ADAUSDT", [*klines[:-1], partial])
    assert relay_in(app, in_headers).json["data"]["processed"] == 60

    binance.add("ADAUSDT", [klines[-1], *make_klines(T0 + timedelta(minutes=60), 1, seed=1)])
    resp = relay_in(app, in_headers)

    assert resp.json["data"]["processed"] == 2  # the updated minute and one new minute
    rows = candle_rows(conn)
    assert len(rows) == 61
    assert rows[59][4] == Decimal(klines[-1][4]) and rows[59][5] == Decimal(klines[-1][5])
    # Nothing new at all: 204.
    relay_in(app, in_headers, status=204)


def test_a_run_that_skipped_hours_catches_up_completely(app, binance, conn, in_headers, clock_now):
    clock_now.value = T0 + timedelta(hours=2)
    binance.add("ADAUSDT", make_klines(T0, 120))
    relay_in(app, in_headers)
    # Seven hours pass without a run.
    binance.add("ADAUSDT", make_klines(T0 + timedelta(hours=2), 7 * 60))
    clock_now.value = T0 + timedelta(hours=9)

    resp = relay_in(app, in_headers)

    assert resp.json["data"]["processed"] == 7 * 60
    times = [r[0] for r in candle_rows(conn)]
    assert len(times) == 9 * 60
    assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(times))


def test_429_with_retry_after_is_honoured(app, binance, conn, in_headers, sleeps):
    binance.add("ADAUSDT", make_klines(T0 + timedelta(hours=47), 10))
    binance.fail_on_call = {
        1: (429, '{"code":-1003,"msg":"Too many requests"}', {"Retry-After": "2"})
    }
    relay_in(app, in_headers)
    assert sleeps == [2.0]
    assert len(candle_rows(conn)) == 10


def test_418_ban_longer_than_the_budget_is_502_at_once(app, binance, conn, in_headers, sleeps):
    binance.add("ADAUSDT", make_klines(T0 + timedelta(hours=47), 10))
    binance.fail_on_call = {1: (418, '{"code":-1003,"msg":"banned"}', {"Retry-After": "120"})}
    resp = relay_in(app, in_headers, status=502)
    assert "Binance answered HTTP 418" in resp.json["message"]
    assert "retry after 120 s" in resp.json["message"]
    assert sleeps == []
    assert candle_rows(conn) == []


def test_unknown_symbol_is_400_invalid_symbol(app, binance, in_headers):
    resp = relay_in(app, in_headers, ["NOSUCHPAIR"], status=400)
    assert resp.json["message"] == "Bad Request: Invalid Symbol"


def test_the_get_route_takes_source_binance(app, binance, in_headers):
    binance.add("ADAUSDT", make_klines(T0 + timedelta(hours=47), 3))
    resp = app.get(
        "/relay-api/v1/relay-in",
        {"Symbol": "ADAUSDT", "source": "binance"},
        headers=in_headers,
        status=201,
    )
    assert resp.json["data"]["processed"] == 3


def test_451_from_a_us_region_says_so(app, binance, in_headers):
    binance.fail_on_call = {
        1: (451, '{"code":0,"msg":"Service unavailable from a restricted location"}')
    }
    resp = relay_in(app, in_headers, status=502)
    assert "HTTP 451" in resp.json["message"] and "BINANCE_URL" in resp.json["message"]


def test_weight_budget_pauses_until_the_next_minute(make_app, config, binance, in_headers, sleeps):
    # Each request weighs 2; with a limit of 7 the 3rd answer (6 >= 80 %) calls a pause
    # before the 4th request (the ticker, after three kline pages).
    now = T0 + timedelta(hours=48, seconds=15)
    app = make_app(config.replace(binance_weight_limit=7, relay_in_budget_s=120), now=lambda: now)
    binance.add("ADAUSDT", make_klines(T0, 48 * 60 + 1))
    relay_in(app, in_headers)
    assert sleeps == [45.5]  # to the start of the next minute, plus half a second


def test_weight_pause_past_the_budget_stops_early_and_says_so(
    make_app, config, binance, conn, in_headers, sleeps
):
    now = T0 + timedelta(hours=48, seconds=15)
    # With a limit of 4, the 2nd answer (4 >= 80 %) calls a pause of 45.5 s > the 20 s budget.
    app = make_app(config.replace(binance_weight_limit=4), now=lambda: now)
    binance.add("ADAUSDT", make_klines(T0, 48 * 60 + 1))
    resp = relay_in(app, in_headers)
    assert resp.json["data"]["complete"] is False
    assert resp.json["data"]["processed"] == 2000
    assert sleeps == []


def test_a_malformed_kline_page_stores_nothing(app, binance, conn, in_headers):
    binance.fail_on_call = {1: (200, '[[1, "x"]]')}
    binance.add("ADAUSDT", [])
    resp = relay_in(app, in_headers, status=502)
    assert "kline #0 is malformed" in resp.json["message"]
    assert candle_rows(conn) == []


# -- relay-out ------------------------------------------------------------------------


@pytest.fixture
def day_and_a_bit(app, binance, in_headers, clock_now):
    """25 hours of ADAUSDT minutes and a ticker 10 s after the last one closed."""
    klines = make_klines(T0, 25 * 60)
    binance.add("ADAUSDT", klines)
    as_of = T0 + timedelta(hours=25, seconds=10)
    binance.tickers["ADAUSDT"] = make_ticker("ADAUSDT", "0.65000000", as_of)
    clock_now.value = as_of + timedelta(seconds=1)
    relay_in(app, in_headers)
    return klines, as_of


def test_profit_matches_a_hand_computation(app, out_headers, day_and_a_bit):
    klines, as_of = day_and_a_bit
    then = as_of - timedelta(hours=24)  # T0 + 1 h 10 s
    price_then = Decimal(klines[60][4])  # the minute that opened at T0 + 1 h
    assert price_then == Decimal("0.50600000")
    ctx = decimal.Context(prec=50)
    final = ctx.divide(ctx.multiply(Decimal("1000"), Decimal("0.65")), price_then)
    expected_final = final.quantize(Decimal("0.00000001"))

    data = app.get(
        f"{OUT}/profit", {"value": "1000", "currency": "adausdt"}, headers=out_headers
    ).json["data"]

    assert data == {
        "symbol": "ADAUSDT",
        "quote": "USDT",
        "value": "1000",
        "price_then": "0.50600000",
        "price_now": "0.65000000",
        "then": then.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "now": as_of.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "final_value": f"{expected_final:f}",
        "profit": f"{expected_final - 1000:f}",
        "profit_percent": f"{((final - 1000) / 10).quantize(Decimal('0.0001')):f}",
    }
    # 1000 x 0.65 / 0.506 = 1284.584980237154150197...
    assert data["final_value"] == "1284.58498024"
    assert data["profit"] == "284.58498024"
    assert data["profit_percent"] == "28.4585"


def test_profit_keeps_every_digit_at_the_extremes_an_upstream_may_send(app, out_headers, conn):
    """Prices as far apart as relay takes them (1e-60 and 1e60) and the largest value: the
    final value is 1e135, given to the unit's 8 decimals, not a 500."""
    conn.execute(
        """
        INSERT INTO binance_candle
        SELECT 'PUMPUSDT', t, t + interval '59.999 seconds', c, c, c, c, 1, 1, 1, 1, 1,
               t + interval '1 minute'
        FROM (VALUES (timestamptz '2026-01-01', %s::numeric),
                     (timestamptz '2026-01-02 00:01', %s::numeric)) AS v (t, c)
        """,
        ("0." + "0" * 59 + "1", "1" + "0" * 60),
    )
    query = {"value": "1000000000000000", "currency": "PUMPUSDT"}
    data = app.get(f"{OUT}/profit", query, headers=out_headers).json["data"]
    assert data["final_value"] == f"{10**135}.00000000"
    assert data["profit"] == f"{10**135 - 10**15}.00000000"
    assert data["profit_percent"] == f"{10**122 - 100}.0000"


def test_price_is_the_freshest_we_hold(app, out_headers, day_and_a_bit):
    data = app.get(f"{OUT}/price", {"currency": "ADAUSDT"}, headers=out_headers).json["data"]
    assert data["price"] == "0.65000000"


def test_profit_with_less_than_24_hours_is_422_saying_how_much(
    app, binance, in_headers, out_headers, clock_now
):
    clock_now.value = T0 + timedelta(hours=5)
    binance.add("ADAUSDT", make_klines(T0, 5 * 60))
    clock_now.value = T0 + timedelta(hours=48)
    relay_in(app, in_headers)
    resp = app.get(
        f"{OUT}/profit", {"value": "1000", "currency": "ADAUSDT"}, headers=out_headers, status=422
    )
    assert resp.json["message"].startswith("Unprocessable Entity: ADAUSDT has 5.0 hours")
    assert resp.json["data"]["history_hours"] == 5.0


@pytest.mark.parametrize(
    ("route", "query", "named"),
    [
        ("price", {}, "symbol"),  # currency is an alias: a missing one is named symbol
        ("price", {"currency": ""}, "currency"),
        ("price", {"currency": "ADA/USDT"}, "currency"),
        ("profit", {"currency": "ADAUSDT"}, "value"),
        ("profit", {"currency": "ADAUSDT", "value": ""}, "value"),
        ("profit", {"value": "1000"}, "symbol"),
        ("price", {"currency": "ADAUSDT", "symbol": "ADAUSDT"}, "currency"),
        ("profit", {"currency": "ADAUSDT", "value": "abc"}, "value"),
        ("profit", {"currency": "ADAUSDT", "value": "-5"}, "value"),
        ("profit", {"currency": "ADAUSDT", "value": "0"}, "value"),
        ("profit", {"currency": "ADAUSDT", "value": "NaN"}, "value"),
        ("profit", {"currency": "ADAUSDT", "value": "Infinity"}, "value"),
        ("profit", {"currency": "ADAUSDT", "value": "1e999"}, "value"),
        ("candles", {"symbol": "ADAUSDT", "interval": "7m"}, "interval"),
        ("candles", {"symbol": "ADAUSDT", "start": "2026-11-21", "end": "2026-11-20"}, "start"),
        ("candles", {"symbol": "ADAUSDT", "start": "2020-01-01", "interval": "1m"}, "start"),
    ],
)
def test_bad_input_is_400_naming_the_parameter(
    app, out_headers, route, query, named, day_and_a_bit
):
    resp = app.get(f"{OUT}/{route}", query, headers=out_headers, status=400)
    assert named in resp.json["message"]


@pytest.mark.parametrize(
    ("route", "query"),
    [
        ("price", {"currency": "DOGEUSDT"}),
        ("profit", {"currency": "DOGEUSDT", "value": "10"}),
        ("candles", {"symbol": "DOGEUSDT"}),
    ],
)
def test_unknown_symbol_is_404(app, out_headers, route, query):
    resp = app.get(f"{OUT}/{route}", query, headers=out_headers, status=404)
    assert resp.json["message"] == "Not Found: no data for symbol DOGEUSDT"


def expected_buckets(klines, width_minutes, start_index=0):
    buckets = {}
    for k in klines:
        key = (k[0] // 60_000 // width_minutes) * width_minutes * 60_000
        buckets.setdefault(key, []).append(k)
    out = []
    for key in sorted(buckets):
        rows = buckets[key]
        out.append(
            {
                "time": datetime.fromtimestamp(key / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "open": rows[0][1],
                "high": f"{max(Decimal(r[2]) for r in rows):f}",
                "low": f"{min(Decimal(r[3]) for r in rows):f}",
                "close": rows[-1][4],
                "volume": f"{sum(Decimal(r[5]) for r in rows):f}",
            }
        )
    return out


@pytest.mark.parametrize(("interval", "minutes"), [("5m", 5), ("15m", 15), ("1h", 60), ("4h", 240)])
def test_candles_resample_the_one_minute_rows(
    app, binance, in_headers, out_headers, clock_now, interval, minutes
):
    clock_now.value = T0 + timedelta(hours=6)
    klines = make_klines(T0 + timedelta(minutes=7), 5 * 60)
    without_gap = klines[:100] + klines[200:]  # minutes 107..206 never traded
    binance.add("ADAUSDT", without_gap)
    clock_now.value = T0 + timedelta(hours=24)
    relay_in(app, in_headers)

    query = {"symbol": "ADAUSDT", "interval": interval, "start": T0.isoformat()}
    data = app.get(f"{OUT}/candles", query, headers=out_headers).json["data"]

    assert data["symbol"] == "ADAUSDT" and data["interval"] == interval
    assert data["quote"] == "USDT"
    assert data["candles"] == expected_buckets(without_gap, minutes)


def test_hourly_buckets_skip_hours_without_data(app, binance, in_headers, out_headers, clock_now):
    clock_now.value = T0 + timedelta(hours=24)
    klines = make_klines(T0, 180)
    binance.add("ADAUSDT", klines[:60] + klines[120:])
    relay_in(app, in_headers)
    query = {"symbol": "ADAUSDT", "interval": "1h", "start": "2026-11-20", "end": "2026-11-21"}
    times = [
        c["time"]
        for c in app.get(f"{OUT}/candles", query, headers=out_headers).json["data"]["candles"]
    ]
    assert times == ["2026-11-20T00:00:00Z", "2026-11-20T02:00:00Z"]


def test_price_and_profit_queries_use_the_primary_key(conn):
    conn.execute(
        """
        INSERT INTO binance_candle
        SELECT s, t, t + interval '59.999 seconds', 1, 1, 1, 1, 1, 1, 1, 1, 1, t
        FROM unnest(ARRAY['ADABTC', 'ADAUSDT', 'BTCUSDT']) AS s,
             generate_series(timestamptz '2026-01-01', timestamptz '2026-01-08',
                             interval '1 minute') AS t
        """
    )
    conn.execute("ANALYZE binance_candle")
    statements = candles.statements(MARKET)
    plans = {
        name: "\n".join(r[0] for r in conn.execute(b"EXPLAIN " + query, args))
        for name, query, args in [
            ("latest", statements.latest_price, {"symbol": "ADAUSDT"}),
            ("then", statements.price_at, {"symbol": "ADAUSDT", "at": "2026-01-05"}),
            ("oldest", statements.oldest, {"symbol": "ADAUSDT"}),
            ("symbols", statements.symbols, {}),
        ]
    }
    for name, plan in plans.items():
        # the primary key of each month's partition (binance_candle_p_before_pkey, ...)
        assert re.search(r"using binance_candle\w*_pkey", plan), (name, plan)
        assert "Seq Scan on binance_candle" not in plan, (name, plan)


def test_symbols_lists_each_symbol_held_once_in_order(app, binance, in_headers, out_headers):
    assert app.get(f"{OUT}/symbols", headers=out_headers).json["data"] == {"symbols": []}
    binance.add("BTCUSDT", make_klines(T0, 3, price="90000.00000000"))
    binance.add("ADAUSDT", make_klines(T0, 5))
    relay_in(app, in_headers, symbols=("BTCUSDT", "ADAUSDT"))

    resp = app.get(f"{OUT}/symbols", headers=out_headers)

    assert resp.json == {"code": 200, "message": "OK", "data": {"symbols": ["ADAUSDT", "BTCUSDT"]}}
    app.get(f"{OUT}/symbols", status=401)


def test_a_straight_copy_that_meets_a_stored_minute_falls_back_to_the_upsert(conn, database_url):
    from relay.sources.binance.client import parse_klines

    fetched = T0 + timedelta(hours=3)
    first = parse_klines(make_klines(T0, 3))
    with psycopg.connect(database_url) as direct:
        assert candles.store_minutes(direct, MARKET, "ADAUSDT", first, fetched) == 3
        # Told (wrongly) that nothing is stored past T0: minutes 1 and 2 are met in the
        # straight COPY, which is undone; the upsert then stores the one changed minute
        # and the new one, and nothing twice.
        changed = parse_klines(make_klines(T0, 4, seed=9))  # other volumes, same prices
        assert candles.store_minutes(direct, MARKET, "ADAUSDT", changed, fetched, T0) == 4
        unchanged = parse_klines(make_klines(T0, 4, seed=9))
        assert candles.store_minutes(direct, MARKET, "ADAUSDT", unchanged, fetched, T0) == 0
    rows = candle_rows(conn)
    assert len(rows) == 4
    assert [r[5] for r in rows] == [k.volume for k in changed]


@pytest.mark.parametrize("stored_before", [False, True], ids=["straight-copy", "upsert"])
def test_tiny_zero_and_long_decimals_keep_every_digit_on_either_path(
    conn, database_url, stored_before
):
    from relay.sources.binance.client import parse_klines

    kline = make_klines(T0, 1)[0]
    kline[1:6] = ["0.00000001", "123456789012345678.123456789012", "0.00000000", "1E-8", "0"]
    with psycopg.connect(database_url) as direct:
        if stored_before:
            candles.store_minutes(direct, MARKET, "ADAUSDT", parse_klines(make_klines(T0, 1)), T0)
        stored = candles.store_minutes(
            direct, MARKET, "ADAUSDT", parse_klines([kline]), T0, T0 if stored_before else None
        )
    assert stored == 1
    row = conn.execute(
        "SELECT open::text, high::text, low::text, close::text, volume::text FROM binance_candle"
    ).fetchone()
    assert row == ("0.00000001", "123456789012345678.123456789012", "0.00000000", "0.00000001", "0")


@pytest.mark.parametrize(
    ("symbol", "quote"),
    [
        ("BTCUSDT", "USDT"),
        ("ADABTC", "BTC"),
        ("ETHFDUSD", "FDUSD"),
        ("BTCEUR", "EUR"),
        ("BTCAEUR", None),  # BTC in AEUR, or BTCA in EUR? Only exchangeInfo knows:
        ("ADAEUR", None),  # and here it is ADA in EUR. Neither is guessed.
        ("TUSDT", "USDT"),  # Threshold's T in USDT
        ("USDTTRY", "TRY"),
        ("ABCXYZ", None),  # no quote asset it ends with: said, not guessed
        ("BTC", None),  # a quote alone has no base
    ],
)
def test_a_symbol_names_its_quote_asset(symbol, quote):
    assert MARKET.quote(symbol) == quote
