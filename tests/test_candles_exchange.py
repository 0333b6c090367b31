"""Candles of every interval are aggregated from 1-minute rows the way Binance aggregates.

A minute without a trade comes from Binance with volume 0 and open = high = low = close =
the previous close. Binance's own higher-interval bar takes its open, high and low only
from the minutes that traded (volume > 0) and its close from the last minute; a bucket in
which no minute traded is the carried price four times. Aggregating every minute alike
gets the open, high or low wrong wherever a bucket holds an untraded minute.

Binance's real XRPETH minutes of 2019-10-11..13 go in through the loopback Binance and
the relay-in route; the relay-out candles route must give back Binance's real 5-minute
bars of the same span, and the coarser intervals that rule applied to those bars.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.upstreams import SAMPLES, FakeBinance

IN = "/relay-api/v1/relay-in/binance"
CANDLES = "/relay-api/v1/relay-out/candles"
MINUTES = "binance_klines_XRPETH_1m_2019-10-11_freqtrade_ccxt6col.json"  # 3560 bars
FIVES = "binance_klines_XRPETH_5m_2019-10-11_freqtrade_ccxt6col.json"  # 712 bars
SPAN_START = datetime(2019, 10, 11, tzinfo=UTC)
SPAN_END = datetime(2019, 10, 13, 11, 20, tzinfo=UTC)  # after the last minute, 11:19
INTERVALS = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "1d": timedelta(days=1),
}


def ccxt_bars(name: str) -> list[list]:
    """A recorded ccxt 6-column file: [open ms, open, high, low, close, volume].

    The numbers are JSON numbers there; each is kept as the text it is written with
    (0.0014158, 1482.0), so no digit is added or lost on the way to the wire.
    """
    rows = json.loads((SAMPLES / name).read_text(), parse_float=str, parse_int=str)
    return [[int(row[0]), *row[1:]] for row in rows]


def kline(open_ms: int, o: str, h: str, low: str, c: str, volume: str) -> list:
    """A 1-minute bar in Binance's 12-field /api/v3/klines shape.

    The six given fields go out as given. ccxt keeps no more than those, so the rest are
    derived: closeTime = openTime + 59999 as Binance sends it; quoteVolume = volume x
    close (not Binance's figure, which sums each trade's price x quantity); one trade for
    a minute with volume, none without; no taker buys. Candles read none of these.
    """
    traded = Decimal(volume) > 0
    return [
        open_ms, o, h, low, c, volume, open_ms + 59_999, f"{Decimal(volume) * Decimal(c):f}",
        1 if traded else 0, "0", "0", "0",
    ]  # fmt: skip


def relay_in(make_app, config, in_headers, symbol: str, now: datetime, backfill_hours: int):
    app = make_app(config.replace(binance_backfill_hours=backfill_hours), now=lambda: now)
    resp = app.post_json(IN, {"symbols": [symbol]}, headers=in_headers, status=201)
    assert resp.json["data"]["complete"] is True
    return app, resp.json["data"]["processed"]


def candles(app, headers, symbol, interval, start: datetime, end: datetime) -> list[tuple]:
    """relay-out's answer as (time, open, high, low, close, volume), numbers as Decimals."""
    query = {"symbol": symbol, "interval": interval, "start": start.isoformat(),
             "end": end.isoformat()}  # fmt: skip
    data = app.get(CANDLES, query, headers=headers).json["data"]
    return [
        (c["time"], *(Decimal(c[k]) for k in ("open", "high", "low", "close", "volume")))
        for c in data["candles"]
    ]


def as_rows(bars: list[list]) -> list[tuple]:
    """ccxt bars as candles-route rows: the time as relay writes it, numbers as Decimals."""
    return [
        (_time_text(datetime.fromtimestamp(bar[0] / 1000, UTC)), *map(Decimal, bar[1:]))
        for bar in bars
    ]


def _time_text(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def binance_rule(bars: list[tuple]) -> tuple:
    """Aggregate consecutive bars (time first) into one, as Binance builds its own bars."""
    traded = [bar for bar in bars if bar[5] > 0]
    close = bars[-1][4]
    volume = sum((bar[5] for bar in bars), Decimal(0))
    if not traded:
        return (bars[0][0], close, close, close, close, volume)
    return (
        bars[0][0],
        traded[0][1],
        max(bar[2] for bar in traded),
        min(bar[3] for bar in traded),
        close,
        volume,
    )


def every_bar_alike(bars: list[tuple]) -> tuple:
    """Aggregate bars ignoring whether they traded (how relay got it wrong)."""
    return (
        bars[0][0],
        bars[0][1],
        max(bar[2] for bar in bars),
        min(bar[3] for bar in bars),
        bars[-1][4],
        sum((bar[5] for bar in bars), Decimal(0)),
    )


def buckets(bars: list[list], width: timedelta) -> list[list[list]]:
    """Group ccxt bars into epoch-aligned buckets of ``width``, oldest first."""
    grouped: dict[int, list[list]] = {}
    step = int(width.total_seconds() * 1000)
    for bar in bars:
        grouped.setdefault(bar[0] // step * step, []).append(bar)
    return [grouped[key] for key in sorted(grouped)]


def differing(got: list[tuple], want: list[tuple]) -> list[tuple]:
    return [(g, w) for g, w in zip(got, want, strict=True) if g != w]


@pytest.fixture
def binance(httpserver):
    return FakeBinance(httpserver)


@pytest.fixture
def config(config, httpserver):
    return config.replace(binance_url=httpserver.url_for("/").rstrip("/"))


@pytest.fixture
def xrpeth(make_app, config, binance, in_headers):
    """Binance's real XRPETH minutes, relayed in; the app that holds them."""
    binance.add("XRPETH", [kline(*bar) for bar in ccxt_bars(MINUTES)])
    now = SPAN_END + timedelta(seconds=30)
    # The span is 59 h 20 min long: a first run backfilling 72 h reaches all of it.
    app, processed = relay_in(make_app, config, in_headers, "XRPETH", now, 72)
    assert processed == 3560
    return app


def test_five_minute_candles_are_binances_own_bars(xrpeth, out_headers):
    five_minute = as_rows(ccxt_bars(FIVES))
    minutes = ccxt_bars(MINUTES)
    by_five = [as_rows(b) for b in buckets(minutes, timedelta(minutes=5))]
    # The data tells the rule apart: treating untraded minutes like traded ones gets 183
    # of Binance's 712 bars wrong, and binance_rule (which the coarser test uses) none.
    assert len(differing([every_bar_alike(b) for b in by_five], five_minute)) == 183
    assert [binance_rule(b) for b in by_five] == five_minute

    got = candles(xrpeth, out_headers, "XRPETH", "5m", SPAN_START, SPAN_END)

    assert len(got) == 712
    wrong = differing(got, five_minute)
    assert not wrong, f"{len(wrong)} of 712 five-minute candles differ from Binance's; {wrong[:3]}"


@pytest.mark.parametrize("interval", list(INTERVALS))
def test_coarser_candles_follow_the_rule_over_binances_five_minute_bars(
    xrpeth, out_headers, interval
):
    five_minute = ccxt_bars(FIVES)
    want = [binance_rule(as_rows(b)) for b in buckets(five_minute, INTERVALS[interval])]
    # SPAN_START (midnight) is on a bucket boundary of every interval.
    got = candles(xrpeth, out_headers, "XRPETH", interval, SPAN_START, SPAN_END)

    assert len(got) == len(want)
    wrong = differing(got, want)
    assert not wrong, f"{len(wrong)} of {len(want)} {interval} candles differ; {wrong[:3]}"


def test_buckets_with_untraded_minutes(make_app, config, binance, in_headers, out_headers):
    t0 = datetime(2026, 11, 20, tzinfo=UTC)
    ms = int(t0.timestamp() * 1000)

    def at(minute: int) -> int:
        return ms + minute * 60_000

    carried = ["0.48000000"] * 4
    minutes = [
        # 00:00 carries 0.46 from before; trading starts at 00:01 and ends at 0.48.
        kline(at(0), *["0.46000000"] * 4, "0.00000000"),
        kline(at(1), "0.50000000", "0.50500000", "0.47500000", "0.49000000", "10.00000000"),
        kline(at(2), "0.49000000", "0.49100000", "0.48500000", "0.48800000", "3.50000000"),
        kline(at(3), *["0.48800000"] * 4, "0.00000000"),
        kline(at(4), "0.48700000", "0.48900000", "0.48000000", "0.48000000", "2.00000000"),
        # 00:05-00:09: not one trade; every minute carries 0.48.
        *(kline(at(m), *carried, "0.00000000") for m in range(5, 10)),
        # 00:10: no trade yet (0.48 carried); trading resumes higher at 00:11.
        kline(at(10), *carried, "0.00000000"),
        kline(at(11), "0.52000000", "0.52500000", "0.51500000", "0.52400000", "7.25000000"),
        kline(at(12), "0.52400000", "0.53500000", "0.52300000", "0.53000000", "1.00000000"),
        kline(at(13), *["0.53000000"] * 4, "0.00000000"),
        kline(at(14), "0.52900000", "0.52900000", "0.52100000", "0.52200000", "0.75000000"),
    ]
    binance.add("ADAUSDT", minutes)
    app, processed = relay_in(
        make_app, config, in_headers, "ADAUSDT", t0 + timedelta(minutes=15, seconds=30), 48
    )
    assert processed == 15

    def row(minute, o, h, low, c, volume):
        when = _time_text(t0 + timedelta(minutes=minute))
        return (when, *map(Decimal, (o, h, low, c, volume)))

    end = t0 + timedelta(minutes=15)
    assert candles(app, out_headers, "ADAUSDT", "5m", t0, end) == [
        row(0, "0.50", "0.505", "0.475", "0.48", "15.5"),  # open from 00:01, low not 0.46
        row(5, "0.48", "0.48", "0.48", "0.48", "0"),  # no trade: the carried price
        row(10, "0.52", "0.535", "0.515", "0.522", "9"),  # open from 00:11, low not 0.48
    ]
    # One 15-minute bucket: still opened by 00:01, the carried 0.46 no low.
    assert candles(app, out_headers, "ADAUSDT", "15m", t0, end) == [
        row(0, "0.50", "0.535", "0.475", "0.522", "24.5"),
    ]
