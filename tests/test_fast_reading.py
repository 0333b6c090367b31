"""The fast readers (read_trades, read_klines) through the app, from the loopback upstreams.

A page in the upstream's usual form is read straight to COPY text: each value must be
stored with every digit as sent. A page in any other form falls to the exact path
(parse_trades, parse_klines), which stores what it accepts and answers a 502 naming
the upstream and the field for what it does not, as before.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from relay.sources.binance.client import read_klines
from relay.sources.coinapi.client import read_trades
from tests.upstreams import FakeBinance, FakeCoinAPI, coinapi_time, make_klines, make_trades

BTC = "BITSTAMP_SPOT_BTC_USD"
NOW = datetime(2022, 1, 1, 12, tzinfo=UTC)
T0 = datetime(2022, 1, 1, 1, tzinfo=UTC)
KLINE_NOW = datetime(2026, 11, 21, 0, 0, 30, tzinfo=UTC)
K0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)


@pytest.fixture
def coinapi(httpserver):
    return FakeCoinAPI(httpserver)


@pytest.fixture
def binance(httpserver):
    return FakeBinance(httpserver)


def trades_body(trades) -> bytes:
    return ("[" + ", ".join(t.to_json(BTC) for t in trades) + "]").encode()


def relay_coinapi(make_app, config, status):
    app = make_app(config, now=lambda: NOW)
    return app.get(
        "/relay-api/v1/relay-in",
        {"Symbol": "BTC"},
        headers={"Authorization": _bearer()},
        status=status,
    )


def relay_binance(make_app, config, httpserver, status):
    app = make_app(
        config.replace(binance_url=httpserver.url_for("/").rstrip("/")), now=lambda: KLINE_NOW
    )
    return app.post_json(
        "/relay-api/v1/relay-in/binance",
        {"symbols": ["ADAUSDT"]},
        headers={"Authorization": _bearer()},
        status=status,
    )


def _bearer() -> str:
    from tests.conftest import bearer

    return bearer("relay:in")["Authorization"]


def stored_trades(conn):
    return conn.execute(
        "SELECT uuid::text, time_exchange, time_coinapi, price::text, size::text, taker_side "
        "FROM symbol_data ORDER BY time_exchange, uuid"
    ).fetchall()


def stored_klines(conn):
    return conn.execute(
        "SELECT open_time, close_time, open::text, high::text, low::text, close::text, "
        "volume::text, quote_volume::text, trades, taker_buy_base::text, "
        "taker_buy_quote::text FROM binance_candle ORDER BY open_time"
    ).fetchall()


# -- CoinAPI ----------------------------------------------------------------------------


def test_trades_in_the_usual_form_are_read_fast_and_stored_digit_for_digit(
    make_app, config, coinapi, conn
):
    trades = make_trades(T0, 4)
    trades[0].price = "46150." + "1234567890" * 4  # 40 decimals
    trades[1].price = "1" * 60  # 60 whole digits
    trades[2].size = "0.00000001"
    trades[3].price, trades[3].size = "0", "0.0000000000"
    trades[3].time_exchange = "2022-01-01T01:00:03.1234569Z"  # the 7th digit is cut, not rounded
    assert read_trades(trades_body(trades), BTC) is not None
    coinapi.add(BTC, trades)

    relay_coinapi(make_app, config, 201)

    rows = stored_trades(conn)
    assert [(r[3], r[4]) for r in rows] == [(t.price, t.size) for t in trades]
    assert rows[3][1] == datetime(2022, 1, 1, 1, 0, 3, 123456, tzinfo=UTC)
    assert [r[0] for r in rows] == [t.uuid for t in trades]


@pytest.mark.parametrize(
    ("field", "value", "status", "words"),
    [
        ("price", "-46150.5", 502, "'price' is negative"),
        ("price", "1e999999", 502, "'price' is out of range"),
        ("price", '"NaN"', 502, "'price' is not finite"),
        ("price", "true", 502, "'price' is not a number"),
        ("size", "[1]", 502, "'size' is not a number"),
        ("taker_side", "BU\\u0000Y", 502, "contains a NUL"),
        ("taker_side", "BUY\\n", 201, ""),  # odd text the exact path takes, escaped in COPY
        ("time_exchange", "2022-02-30T01:00:00.0000000Z", 502, "CoinAPI trade #0"),
        ("time_exchange", "2200-01-01T00:00:00.0000000Z", 502, "outside 1970..2200"),
        ("price", "4615E1", 201, ""),  # an exponent: exact, through Decimal
        ("price", '" 46150.5"', 201, ""),  # spaces: Decimal takes them, as it always did
        ("uuid", "6A3B0C5E-0000-4000-8000-000000000001", 201, ""),  # upper case: one uuid
    ],
)
def test_trades_in_any_other_form_take_the_exact_path_as_before(
    make_app, config, coinapi, conn, field, value, status, words
):
    trade = make_trades(T0, 1)[0]
    if field in ("price", "size"):
        setattr(trade, field, value)
    else:
        body = trade.to_json(BTC).replace(f'"{getattr(trade, field)}"', f'"{value}"', 1)
    body = f"[{trade.to_json(BTC) if field in ('price', 'size') else body}]".encode()
    assert read_trades(body, BTC) is None
    coinapi.fail_on_call[1] = (200, body)

    resp = relay_coinapi(make_app, config, status)

    if status == 502:
        assert resp.json["code"] == 502
        assert "CoinAPI" in resp.json["message"] and words in resp.json["message"]
        assert stored_trades(conn) == []
    else:
        assert len(stored_trades(conn)) == 1


def test_a_line_end_inside_a_value_cannot_pass_for_a_second_trade(make_app, config, coinapi, conn):
    first, second = make_trades(T0, 2)
    # A side that ends in a whole COPY line (at most 100 characters in all): taken as text
    # by the exact path, stored verbatim, one trade.
    line = f"{second.uuid}\t{coinapi_time(T0)[:-2]}Z\t{coinapi_time(T0)[:-2]}Z\t1\t1\tB"
    first.taker_side = "B\\n" + line.replace("\t", "\\t")
    body = trades_body([first])
    assert read_trades(body, BTC) is None
    coinapi.fail_on_call[1] = (200, body)

    relay_coinapi(make_app, config, 201)

    rows = stored_trades(conn)
    assert len(rows) == 1 and rows[0][5] == "B\n" + line


def test_a_trade_of_another_symbol_takes_the_exact_path_and_fails(make_app, config, coinapi, conn):
    body = f"[{make_trades(T0, 1)[0].to_json('KRAKEN_SPOT_BTC_USD')}]".encode()
    assert read_trades(body, BTC) is None
    coinapi.fail_on_call[1] = (200, body)

    resp = relay_coinapi(make_app, config, 502)

    assert "sent a trade of KRAKEN_SPOT_BTC_USD" in resp.json["message"]


# -- Binance ----------------------------------------------------------------------------


def test_klines_in_the_usual_form_are_read_fast_and_stored_digit_for_digit(
    make_app, config, httpserver, binance, conn
):
    klines = make_klines(K0, 3)
    klines[0][1:6] = ["0.00000001", "1" * 60 + ".5", "0.00000000", "0.00000001", "0"]
    klines[1][2], klines[1][3] = "1.00", "1.0"  # low equals high, written two ways
    klines[2][9] = "0." + "9" * 40
    assert read_klines(json.dumps(klines).encode()) is not None
    binance.add("ADAUSDT", klines)

    relay_binance(make_app, config, httpserver, 201)

    rows = stored_klines(conn)
    assert [list(r[2:]) for r in rows] == [[*k[1:6], k[7], k[8], k[9], k[10]] for k in klines]
    assert [r[0] for r in rows] == [K0 + timedelta(minutes=i) for i in range(3)]
    assert [r[1] for r in rows] == [K0 + timedelta(minutes=i, seconds=59.999) for i in range(3)]


def test_kline_times_are_exact_to_the_millisecond_up_to_2200():
    last = int(datetime(2200, 1, 1, tzinfo=UTC).timestamp() * 1000) - 1
    times = [0, 1, 999, 1_640_995_200_001, last - 60_001, last - 1]
    klines = [[t, "1", "1", "1", "1", "1", t + 1, "1", 1, "1", "1", "0"] for t in times]
    page = read_klines(json.dumps(klines).encode())
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    expected = [epoch + timedelta(milliseconds=t) for t in times]
    assert [datetime.fromisoformat(line.split("\t")[0]) for line in page.lines] == expected
    assert page.upto == expected[-1]


@pytest.mark.parametrize(
    ("index", "value", "status", "words"),
    [
        (4, "1e999999", 502, "close is out of range"),
        (4, "NaN", 502, "close is not finite"),
        (4, "0x1F", 502, "close is not a number"),
        (4, "1_000", 201, ""),  # Decimal reads it as 1000, as it always did
        (0, 100000000000000000000, 502, "kline #0 is malformed"),
        (0, 7258118400000, 502, "outside 1970..2200"),
        (6, 0, 502, "inconsistent times or prices"),
        (3, "0.50010101000000000001", 502, "inconsistent times or prices"),  # low above high
        (8, -1, 502, "trades is out of range"),
        (4, 0.5, 201, ""),  # a JSON number, not a string: exact, through Decimal
        (4, "-0.5", 201, ""),
        (4, "1\n", 201, ""),
    ],
)
def test_klines_in_any_other_form_take_the_exact_path_as_before(
    make_app, config, httpserver, binance, conn, index, value, status, words
):
    binance.add("ADAUSDT", make_klines(K0, 1))  # its ticker; the klines page is the one below
    kline = make_klines(K0, 1)[0]
    kline[2] = "0.50010101"  # the high: the low case goes above it in its last digits
    kline[index] = value
    body = json.dumps([kline])
    assert read_klines(body.encode()) is None
    binance.fail_on_call[1] = (200, body)

    resp = relay_binance(make_app, config, httpserver, status)

    if status == 502:
        assert "Binance" in resp.json["message"] and words in resp.json["message"]
        assert stored_klines(conn) == []
    else:
        assert len(stored_klines(conn)) == 1
