"""A relay-in works on several symbols at once, fairly, and loses or doubles nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pytest_httpserver import HTTPServer

from tests.upstreams import FakeBinance, make_klines

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
