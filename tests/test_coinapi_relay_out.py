"""Relay-out of CoinAPI trade records: shape, filters, keyset pagination, indexes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from relay.sources.coinapi import store as trade_store
from tests.upstreams import FakeCoinAPI, make_trades, recorded_kraken_trades

NOW = datetime(2022, 1, 1, 12, tzinfo=UTC)
T0 = datetime(2022, 1, 1, 1, tzinfo=UTC)
KRAKEN = "KRAKEN_SPOT_BTC_USD"
BTC = "BITSTAMP_SPOT_BTC_USD"
RECORDS = "/relay-api/v1/relay-out/records"


@pytest.fixture
def app(make_app, config):
    return make_app(config, now=lambda: NOW)


@pytest.fixture
def coinapi(httpserver):
    return FakeCoinAPI(httpserver)


def ingest(app, headers, symbol="BTC"):
    app.get("/relay-api/v1/relay-in", {"Symbol": symbol}, headers=headers, status=201)


def test_records_come_newest_first_in_coinapi_shape(app, coinapi, in_headers, out_headers):
    coinapi.add(KRAKEN, recorded_kraken_trades())
    ingest(app, in_headers, KRAKEN)

    resp = app.get(RECORDS, {"symbol": KRAKEN, "limit": 3}, headers=out_headers)

    assert resp.json["code"] == 200
    records = resp.json["data"]["records"]
    assert len(records) == 3
    # The last trade of the recorded page, as CoinAPI sent it (100 ns digit dropped).
    assert records[0] == {
        "symbol": KRAKEN,
        "uuid": "2e8aaf08-1176-479f-859f-8e32e9fdba50",
        "time_exchange": "2022-01-01T00:00:08.279000Z",
        "time_coinapi": "2022-01-01T00:00:08.398249Z",
        "price": "46150",
        "size": "0.04367",
        "taker_side": "BUY",
    }
    times = [r["time_exchange"] for r in records]
    assert times == sorted(times, reverse=True)
    assert resp.json["data"]["next_cursor"]


def test_prices_keep_every_digit_as_strings(app, coinapi, in_headers, out_headers):
    coinapi.add(BTC, make_trades(T0, 2, price="12345.123456789012345678"))
    ingest(app, in_headers)
    records = app.get(RECORDS, {"symbol": "BTC"}, headers=out_headers).json["data"]["records"]
    assert [r["price"] for r in records] == [
        "12345.124456789012345678",
        "12345.123456789012345678",
    ]
    assert records[0]["size"] == "0.00000002"


def test_the_original_route_takes_Symbol(app, coinapi, in_headers, out_headers):
    coinapi.add(BTC, make_trades(T0, 3))
    ingest(app, in_headers)
    resp = app.get("/relay-api/v1/relay-out", {"Symbol": "btc"}, headers=out_headers)
    assert [r["symbol"] for r in resp.json["data"]["records"]] == [BTC] * 3
    assert resp.json["data"]["next_cursor"] is None


def test_keyset_pagination_has_no_gaps_or_repeats(app, coinapi, in_headers, out_headers):
    # 250 trades, in groups of 5 sharing one instant, so the cursor must break ties by uuid.
    trades = []
    for group in range(50):
        trades += make_trades(T0 + timedelta(seconds=group), 5, step=timedelta(0), seed=group + 1)
    coinapi.add(BTC, trades)
    ingest(app, in_headers)

    seen, cursor, pages = [], None, 0
    while True:
        query = {"symbol": "BTC", "limit": 40}
        if cursor:
            query["cursor"] = cursor
        data = app.get(RECORDS, query, headers=out_headers).json["data"]
        seen += [(r["time_exchange"], r["uuid"]) for r in data["records"]]
        pages += 1
        cursor = data["next_cursor"]
        if cursor is None:
            break

    assert pages == 7  # 6 full pages of 40 and one of 10
    assert len(seen) == len(set(seen)) == 250
    assert seen == sorted(seen, reverse=True)
    assert {u for _, u in seen} == {t.uuid for t in trades}


def test_an_exact_last_page_has_no_next_cursor(app, coinapi, in_headers, out_headers):
    coinapi.add(BTC, make_trades(T0, 20))
    ingest(app, in_headers)
    data = app.get(RECORDS, {"symbol": "BTC", "limit": 20}, headers=out_headers).json["data"]
    assert len(data["records"]) == 20
    assert data["next_cursor"] is None


def test_start_and_end_select_a_half_open_range(app, coinapi, in_headers, out_headers):
    coinapi.add(BTC, make_trades(T0, 60, step=timedelta(minutes=1)))
    ingest(app, in_headers)
    query = {"symbol": "BTC", "start": "2022-01-01T01:10:00Z", "end": "2022-01-01T01:20:00+00:00"}
    records = app.get(RECORDS, query, headers=out_headers).json["data"]["records"]
    assert len(records) == 10
    assert records[0]["time_exchange"] == "2022-01-01T01:19:00Z"
    assert records[-1]["time_exchange"] == "2022-01-01T01:10:00Z"
    # A date alone means midnight UTC; a time without offset is UTC.
    query = {"symbol": "BTC", "start": "2022-01-01T01:50:00", "end": "2022-01-02"}
    assert len(app.get(RECORDS, query, headers=out_headers).json["data"]["records"]) == 10


def test_unknown_symbol_is_404(app, out_headers):
    resp = app.get(RECORDS, {"symbol": "DOGE"}, headers=out_headers, status=404)
    assert resp.json["message"] == "Not Found: no records for symbol BITSTAMP_SPOT_DOGE_USD"


def test_a_known_symbol_without_trades_is_an_empty_page(app, coinapi, in_headers, out_headers):
    coinapi.add(BTC, [])
    app.get("/relay-api/v1/relay-in", {"Symbol": "BTC"}, headers=in_headers, status=204)
    data = app.get(RECORDS, {"symbol": "BTC"}, headers=out_headers).json["data"]
    assert data == {"records": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({}, "Symbol"),
        ({"symbol": "BTC", "limit": "0"}, "limit"),
        ({"symbol": "BTC", "limit": "10001"}, "limit"),
        ({"symbol": "BTC", "limit": "ten"}, "limit"),
        ({"symbol": "BTC", "start": "yesterday"}, "start"),
        ({"symbol": "BTC", "end": "2022-13-01"}, "end"),
        ({"symbol": "BTC", "start": "2022-01-02", "end": "2022-01-01"}, "start"),
        ({"symbol": "BTC", "cursor": "garbage!"}, "cursor"),
        ({"symbol": "BTC", "cursor": "MjAyMnxub3QtYS11dWlk"}, "cursor"),
        ({"symbol": "BTC' OR 1=1 --"}, "Symbol"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(app, out_headers, query, named):
    resp = app.get(RECORDS, query, headers=out_headers, status=400)
    assert resp.json["code"] == 400
    assert named in resp.json["message"]


def test_a_repeated_parameter_is_400(app, out_headers):
    resp = app.get(RECORDS + "?symbol=BTC&symbol=ETH", headers=out_headers, status=400)
    assert "more than once" in resp.json["message"]


def test_the_records_query_is_served_by_the_index(conn):
    conn.execute("INSERT INTO symbol (symbol_id) VALUES ('A'), ('B')")
    conn.execute(
        """
        INSERT INTO symbol_data (uuid, symbol, time_exchange, time_coinapi, price, size, taker_side)
        SELECT gen_random_uuid(), 1 + i % 2, t, t, 1, 1, 'BUY'
        FROM generate_series(1, 20000) AS i,
             LATERAL (SELECT timestamptz '2022-01-01' + i * interval '1 second' AS t) AS x
        """
    )
    conn.execute("ANALYZE symbol_data")
    params = {
        "symbol": 1,
        "start": "-infinity",
        "end": "infinity",
        "after_time": "2022-01-01 03:00:00+00",
        "after_uuid": "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "limit": 101,
    }
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + trade_store.RECORDS, params))
    # the primary key (symbol, time_exchange, uuid) of each month's partition, backwards
    assert re.search(r"Index Scan Backward using symbol_data\w*_pkey", plan), plan
    assert "Sort" not in plan, plan
    newest = "\n".join(
        r[0]
        for r in conn.execute("EXPLAIN " + trade_store.NEWEST_TIME, {"symbol_id": "A", "upto": NOW})
    )
    assert re.search(r"using symbol_data\w*_pkey", newest), newest
