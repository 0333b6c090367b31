"""CoinAPI relay-in end to end: loopback CoinAPI, real PostgreSQL, WebTest."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from werkzeug import Response

from relay import db
from relay.sources.coinapi import store as trade_store
from relay.sources.coinapi.client import Trade, parse_trades
from tests.upstreams import FakeCoinAPI, make_trades, recorded_kraken_trades

BTC = "BITSTAMP_SPOT_BTC_USD"
KRAKEN = "KRAKEN_SPOT_BTC_USD"
URL = "/relay-api/v1/relay-in"
POST_URL = "/relay-api/v1/relay-in/coinapi"
# The recorded Kraken page is from 2022-01-01 00:00; "now" is 12 hours later,
# so the default 24-hour backfill window covers it.
NOW = datetime(2022, 1, 1, 12, tzinfo=UTC)
T0 = datetime(2022, 1, 1, 1, tzinfo=UTC)


@pytest.fixture
def coinapi(httpserver):
    return FakeCoinAPI(httpserver)


@pytest.fixture
def app(make_app, config):
    return make_app(config, now=lambda: NOW)


def stored(conn, symbol_id=BTC):
    return conn.execute(
        """
        SELECT d.uuid::text, d.time_exchange, d.time_coinapi, d.price, d.size, d.taker_side
        FROM symbol_data d JOIN symbol s ON s.id = d.symbol
        WHERE s.symbol_id = %s ORDER BY d.time_exchange, d.uuid
        """,
        (symbol_id,),
    ).fetchall()


def count_rows(conn) -> int:
    return conn.execute("SELECT count(*) FROM symbol_data").fetchone()[0]


def test_a_trade_stamped_in_the_future_does_not_move_the_resume_point_past_others(
    make_app, config, coinapi, conn, in_headers
):
    clock = {"now": NOW}
    app = make_app(config, now=lambda: clock["now"])
    coinapi.add(BTC, make_trades(NOW - timedelta(hours=1), 10, seed=1))
    coinapi.add(BTC, make_trades(NOW + timedelta(days=1), 1, seed=2))  # a clock a day ahead
    assert app.get(URL, {"Symbol": BTC}, headers=in_headers).json["data"]["processed"] == 11
    # half an hour later five more trades happened: the next run resumes before them
    coinapi.add(BTC, make_trades(NOW + timedelta(minutes=20), 5, seed=3))
    clock["now"] = NOW + timedelta(minutes=30)
    assert app.get(URL, {"Symbol": BTC}, headers=in_headers).json["data"]["processed"] == 5
    assert count_rows(conn) == 16
    assert coinapi.requests[-1]["time_start"] < (NOW + timedelta(minutes=20)).isoformat()


def test_first_run_stores_the_recorded_page_with_every_digit(app, coinapi, conn, in_headers):
    recorded = recorded_kraken_trades()
    coinapi.add(KRAKEN, recorded)

    resp = app.get(URL, {"Symbol": KRAKEN}, headers=in_headers, status=201)

    assert resp.json == {
        "code": 201,
        "message": "Created",
        "data": {
            "processed": 10,
            "complete": True,
            "symbols": {KRAKEN: {"processed": 10, "complete": True}},
        },
    }
    rows = stored(conn, KRAKEN)
    assert [r[0] for r in rows] == [t.uuid for t in recorded]
    assert [r[3] for r in rows] == [Decimal(t.price) for t in recorded]
    assert [str(r[4]) for r in rows] == [t.size for t in recorded]  # e.g. 0.00500541
    assert rows[0][1] == datetime(2022, 1, 1, 0, 0, 1, 151000, tzinfo=UTC)
    # CoinAPI's 100 ns digit is dropped (rounded down), the microseconds are kept.
    assert rows[1][2] == datetime(2022, 1, 1, 0, 0, 1, 884183, tzinfo=UTC)
    first = coinapi.requests[0]
    assert first["time_start"] == "2021-12-31T12:00:00.000000"  # NOW - 24 h
    assert first["limit"] == "100"


def test_asset_code_maps_through_the_symbol_template(app, coinapi, conn, in_headers):
    coinapi.add(BTC, make_trades(T0, 3))
    app.get(URL, {"Symbol": "btc"}, headers=in_headers, status=201)
    assert coinapi.requests[0]["symbol_id"] == BTC
    assert len(stored(conn)) == 3


def test_repeated_run_stores_nothing_twice_and_answers_204(app, coinapi, conn, in_headers):
    trades = make_trades(T0, 30)
    coinapi.add(BTC, trades)
    app.get(URL, {"Symbol": "BTC"}, headers=in_headers, status=201)

    resp = app.get(URL, {"Symbol": "BTC"}, headers=in_headers, status=204)

    assert resp.body == b""
    assert count_rows(conn) == 30
    # The second run resumed from the newest stored trade, not from the backfill start.
    assert coinapi.requests[-1]["time_start"] == trades[-1].when.strftime("%Y-%m-%dT%H:%M:%S.%f")


def test_pages_through_a_multi_page_history_until_caught_up(app, coinapi, conn, in_headers):
    trades = make_trades(T0, 250)
    coinapi.add(BTC, trades)

    resp = app.get(URL, {"Symbol": "BTC"}, headers=in_headers, status=201)

    assert resp.json["data"]["processed"] == 250
    assert resp.json["data"]["complete"] is True
    assert len(coinapi.requests) == 3  # 100 + 100 (1 repeated) + 52
    assert [r[0] for r in stored(conn)] == [t.uuid for t in trades]


def test_next_run_takes_only_new_trades_including_the_same_instant(app, coinapi, conn, in_headers):
    trades = make_trades(T0, 5)
    coinapi.add(BTC, trades)
    app.get(URL, {"Symbol": "BTC"}, headers=in_headers, status=201)
    # A late trade at the very instant of the newest stored one, plus two later ones.
    same_instant = make_trades(trades[-1].when, 1, seed=7)
    later = make_trades(trades[-1].when + timedelta(seconds=5), 2, seed=8)
    coinapi.add(BTC, same_instant + later)

    resp = app.get(URL, {"Symbol": "BTC"}, headers=in_headers, status=201)

    assert resp.json["data"]["processed"] == 3
    assert sorted(r[0] for r in stored(conn)) == sorted(
        t.uuid for t in trades + same_instant + later
    )


@pytest.mark.parametrize("query", [{}, {"Symbol": ""}, {"Symbol": "   "}])
def test_missing_symbol_is_400_check_symbol_parameter(app, coinapi, in_headers, query):
    resp = app.get(URL, query, headers=in_headers, status=400)
    assert resp.json["code"] == 400
    assert resp.json["message"] == "Bad Request: Check Symbol Parameter"
    assert coinapi.requests == []


@pytest.mark.parametrize("symbol", ["BT C", "BTC;DROP TABLE symbol", "../etc/passwd", "X" * 300])
def test_malformed_symbol_is_400_invalid_symbol(app, coinapi, in_headers, symbol):
    resp = app.get(URL, {"Symbol": symbol}, headers=in_headers, status=400)
    assert resp.json["message"].startswith("Bad Request")
    assert coinapi.requests == []


def test_symbol_unknown_upstream_is_400_invalid_symbol_and_stores_nothing(
    app, coinapi, conn, in_headers
):
    resp = app.get(URL, {"Symbol": "NOPE_SPOT_XYZ_USD"}, headers=in_headers, status=400)
    assert resp.json["message"] == "Bad Request: Invalid Symbol"
    assert conn.execute("SELECT count(*) FROM symbol").fetchone()[0] == 0


def test_upstream_5xx_is_502_naming_its_status_after_bounded_retries(
    app, coinapi, conn, in_headers, sleeps
):
    coinapi.add(BTC, make_trades(T0, 5))
    coinapi.fail_on_call = {n: (503, '{"error": "maintenance"}') for n in (1, 2, 3)}

    resp = app.get(URL, {"Symbol": "BTC"}, headers=in_headers, status=502)

    assert "CoinAPI" in resp.json["message"] and "503" in resp.json["message"]
    assert len(coinapi.requests) == 3
    assert sleeps == [0.5, 1.0]  # exponential backoff between the attempts
    assert count_rows(conn) == 0


def test_a_transient_failure_is_retried_and_the_run_completes(app, coinapi, conn, in_headers):
    coinapi.add(BTC, make_trades(T0, 5))
    coinapi.fail_on_call = {1: (500, "oops")}
    resp = app.get(URL, {"Symbol": "BTC"}, headers=in_headers, status=201)
    assert resp.json["data"]["processed"] == 5


def test_rate_limit_honours_retry_after(app, coinapi, in_headers, sleeps):
    coinapi.add(BTC, make_trades(T0, 2))
    coinapi.fail_on_call = {1: (429, '{"error": "Too many requests"}', {"Retry-After": "3"})}
    app.get(URL, {"Symbol": "BTC"}, headers=in_headers, status=201)
    assert sleeps == [3.0]
    assert len(coinapi.requests) == 2


def test_rate_limit_past_the_time_budget_is_502_at_once(app, coinapi, conn, in_headers, sleeps):
    coinapi.add(BTC, make_trades(T0, 2))
    coinapi.fail_on_call = {1: (429, "{}", {"Retry-After": "3600"})}
    resp = app.get(URL, {"Symbol": "BTC"}, headers=in_headers, status=502)
    assert resp.json["message"].startswith("Bad Gateway: CoinAPI answered HTTP 429")
    assert "retry after 3600 s" in resp.json["message"]
    assert sleeps == []
    assert count_rows(conn) == 0


def test_wrong_api_key_is_502_with_coinapi_status(make_app, config, coinapi, in_headers):
    app = make_app(config.replace(coinapi_key="wrong"), now=lambda: NOW)
    coinapi.add(BTC, make_trades(T0, 2))
    resp = app.get(URL, {"Symbol": "BTC"}, headers=in_headers, status=502)
    assert "401" in resp.json["message"]
    assert "wrong" not in resp.text  # the key never shows in an answer


def test_a_malformed_page_stores_nothing_from_it(app, coinapi, conn, in_headers):
    coinapi.add(BTC, make_trades(T0, 250))
    coinapi.fail_on_call = {2: (200, '[{"uuid": "not-a-uuid"}]')}

    resp = app.get(URL, {"Symbol": "BTC"}, headers=in_headers, status=502)

    assert "malformed" in resp.json["message"]
    assert resp.json["data"]["processed"] == 100  # page 1 was whole and is kept
    assert count_rows(conn) == 100
    # The next run resumes after page 1 and completes the data, without duplicates.
    resp = app.get(URL, {"Symbol": "BTC"}, headers=in_headers, status=201)
    assert resp.json["data"]["processed"] == 150
    assert count_rows(conn) == 250


def test_truncated_json_is_502_and_the_database_is_unchanged(app, coinapi, conn, in_headers):
    coinapi.add(BTC, make_trades(T0, 5))
    coinapi.fail_on_call = {1: (200, '[{"symbol_id": "BITSTAMP_SPOT_BTC_USD", "uui')}
    resp = app.get(URL, {"Symbol": "BTC"}, headers=in_headers, status=502)
    assert resp.json["message"] == "Bad Gateway: CoinAPI sent malformed JSON"
    assert count_rows(conn) == 0
    assert conn.execute("SELECT count(*) FROM symbol").fetchone()[0] == 0


def test_one_bad_trade_in_a_page_fails_the_whole_page(app, coinapi, conn, in_headers):
    good = ",".join(t.to_json(BTC) for t in make_trades(T0, 3))
    bad = good.replace('"price": 46150.12445678', '"price": "NaN"')
    assert bad != good
    coinapi.fail_on_call = {1: (200, f"[{bad}]")}
    coinapi.add(BTC, [])
    resp = app.get(URL, {"Symbol": "BTC"}, headers=in_headers, status=502)
    assert "trade #1" in resp.json["message"]
    assert count_rows(conn) == 0


def test_a_page_that_does_not_advance_is_502_not_a_loop(make_app, config, coinapi, in_headers):
    app = make_app(config.replace(coinapi_page_limit=5), now=lambda: NOW)
    coinapi.add(BTC, make_trades(T0, 10, step=timedelta(0)))  # 10 trades at one instant
    resp = app.get(URL, {"Symbol": "BTC"}, headers=in_headers, status=502)
    assert "did not advance" in resp.json["message"]
    assert len(coinapi.requests) == 2


def test_time_budget_stops_early_keeps_what_was_stored_and_says_so(
    make_app, config, coinapi, conn, in_headers
):
    # Each upstream answer takes the whole 20 s budget: one page fits in a call.
    assert config.relay_in_budget_s == 20
    app = make_app(config, now=lambda: NOW, clock=lambda: 20.0 * len(coinapi.requests))
    coinapi.add(BTC, make_trades(T0, 250))

    resp = app.get(URL, {"Symbol": "BTC"}, headers=in_headers, status=201)

    assert resp.json["data"]["processed"] == 100
    assert resp.json["data"]["complete"] is False
    assert count_rows(conn) == 100
    # Later calls continue from there until caught up.
    while resp.status_int == 201 and not resp.json["data"]["complete"]:
        resp = app.get(URL, {"Symbol": "BTC"}, headers=in_headers)
    assert count_rows(conn) == 250


def test_post_relays_several_symbols(app, coinapi, conn, in_headers):
    coinapi.add(BTC, make_trades(T0, 4))
    coinapi.add(KRAKEN, recorded_kraken_trades())

    resp = app.post_json(
        POST_URL, {"symbols": ["BTC", KRAKEN, "btc"]}, headers=in_headers, status=201
    )

    assert resp.json["data"] == {
        "processed": 14,
        "complete": True,
        "symbols": {
            BTC: {"processed": 4, "complete": True},
            KRAKEN: {"processed": 10, "complete": True},
        },
    }
    assert count_rows(conn) == 14


def test_post_without_body_uses_the_configured_symbols(app, coinapi, in_headers):
    coinapi.add(BTC, make_trades(T0, 2))
    resp = app.post(POST_URL, headers=in_headers, status=201)
    assert resp.json["data"]["symbols"] == {BTC: {"processed": 2, "complete": True}}


@pytest.mark.parametrize(
    "body",
    [
        "[]",
        '"BTC"',
        '{"symbols": []}',
        '{"symbols": "BTC"}',
        '{"symbols": [1, 2]}',
        '{"symbol": ["BTC"]}',
        '{"symbols": ["BTC"',
        '{"symbols": [' + ",".join(['"BTC"'] * 101) + "]}",
    ],
)
def test_post_rejects_bodies_of_the_wrong_shape(app, coinapi, in_headers, body):
    resp = app.post(
        POST_URL,
        body,
        headers={**in_headers, "Content-Type": "application/json"},
        status=400,
    )
    assert resp.json["code"] == 400
    assert coinapi.requests == []


def test_unknown_source_is_400(app, in_headers):
    resp = app.get(URL, {"Symbol": "BTC", "source": "nope"}, headers=in_headers, status=400)
    assert "source" in resp.json["message"]


def test_upstream_timeout_is_504(make_app, config, httpserver, conn, in_headers):
    def slow(request):
        time.sleep(0.6)
        return Response("[]", content_type="application/json")

    httpserver.expect_request(f"/v1/trades/{BTC}/history").respond_with_handler(slow)
    app = make_app(config.replace(upstream_timeout_s=0.2), now=lambda: NOW)
    resp = app.get(URL, {"Symbol": "BTC"}, headers=in_headers, status=504)
    assert resp.json["message"] == "Gateway Timeout: CoinAPI did not answer within 0.2 s"
    assert count_rows(conn) == 0


def test_unreachable_database_is_503(config, in_headers, coinapi, sleeps):
    import webtest

    from relay.app import create_app

    dead = db.make_pool("postgresql://relay@127.0.0.1:9/relay", timeout=1, open=True)
    try:
        app = webtest.TestApp(create_app(config, dead, sleep=sleeps))
        started = time.monotonic()
        resp = app.get(URL, {"Symbol": "BTC"}, headers=in_headers, status=503)
        assert time.monotonic() - started < 5
        assert resp.json["message"] == "Service Unavailable: database unreachable"
        assert app.get("/health", status=503).json["code"] == 503
    finally:
        dead.close()


def as_trades(coin_trades):
    """CoinTrade fixtures as the parser turns them into rows, through CoinAPI's JSON."""
    body = "[" + ",".join(t.to_json(BTC) for t in coin_trades) + "]"
    return parse_trades(json.loads(body, parse_float=Decimal), BTC)


def test_a_straight_copy_that_meets_a_stored_trade_falls_back_to_the_merge(conn, database_url):
    """A trade is (symbol, time_exchange, uuid): the key its reads use, and its identity."""
    first = make_trades(T0, 3)
    # The same trades again, plus one new trade sent twice within the page; the store is
    # told (wrongly) that nothing is stored yet, so its straight COPY meets stored trades.
    new = make_trades(T0 + timedelta(hours=2), 1, seed=5)
    with psycopg.connect(database_url) as direct:
        assert trade_store.store_page(direct, BTC, as_trades(first), None) == 3
        page = as_trades([*first, *new, *new])
        assert trade_store.store_page(direct, BTC, page, None) == 1
    assert count_rows(conn) == 4


@pytest.mark.parametrize("stored_before", [False, True], ids=["straight-copy", "merge"])
def test_odd_text_and_long_decimals_are_stored_verbatim_on_either_path(
    conn, database_url, stored_before
):
    # Whatever COPY format the store uses: text that would need escaping in COPY's text
    # format (a tab, newline, return or backslash; \N is its NULL) must come back as sent.
    odd = Trade(
        uuid=uuid.UUID(int=77),
        time_exchange=T0 + timedelta(hours=1),
        time_coinapi=T0 + timedelta(hours=1, microseconds=5),
        price=Decimal("0E-8"),
        size=Decimal("123456789012345678.123456789012"),
        taker_side="BUY\tSELL\\N\nX\r",
    )
    with psycopg.connect(database_url) as direct:
        newest = None
        if stored_before:  # a later trade is stored, so this one takes the merge path
            later = as_trades(make_trades(T0 + timedelta(hours=2), 1))
            trade_store.store_page(direct, BTC, later, None)
            newest = trade_store.newest_time(direct, BTC, upto=T0 + timedelta(days=1))
        assert trade_store.store_page(direct, BTC, [odd], newest) == 1
    row = conn.execute(
        "SELECT price::text, size::text, taker_side, time_exchange, time_coinapi "
        "FROM symbol_data WHERE uuid = %s",
        (odd.uuid,),
    ).fetchone()
    assert row == (
        "0.00000000",
        "123456789012345678.123456789012",
        "BUY\tSELL\\N\nX\r",
        odd.time_exchange,
        odd.time_coinapi,
    )
