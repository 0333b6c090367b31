"""Hourly and daily rollups answer exactly what aggregating the 1-minute rows answers.

Minutes go in through the ingest's own store (straight COPY and upsert alike, in pages,
with corrections of minutes already stored); every interval is then read through the
candles service and compared with the exchange's rule applied in Python to the minutes
the table holds.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import hypothesis
import psycopg
import pytest
from hypothesis import strategies as st

from relay import candles, markets, rollups
from relay.errors import BadRequest, NotFound
from relay.reads import Reads
from relay.sources.binance import MARKET
from relay.sources.binance.client import parse_klines, read_klines
from relay.sources.binance.relay_in import BinanceRelayIn
from relay.sources.minutes import Minutes

T0 = datetime(2026, 1, 30, 12, tzinfo=UTC)  # a Friday: weeks and a month end follow
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_symbols = (f"R{n}USDT" for n in itertools.count())


def kline(at: datetime, o: str, h: str, low: str, c: str, volume: str) -> list:
    ms = int(at.timestamp() * 1000)
    return [ms, o, h, low, c, volume, ms + 59_999, "0", 1 if Decimal(volume) else 0, "0", "0", "0"]


def bucket_of(interval: str, at: datetime) -> datetime:
    """The bucket a minute belongs to, worked out independently of relay.markets."""
    if interval == "1M":
        return at.replace(day=1, hour=0, minute=0)
    if interval == "1w":
        return (at - timedelta(days=at.weekday())).replace(hour=0, minute=0)
    unit = {"m": 60, "h": 3600, "d": 86400}[interval[-1]]
    step = int(interval[:-1]) * unit
    return datetime.fromtimestamp(int(at.timestamp()) // step * step, UTC)


def by_the_rule(interval: str, minutes: list[tuple]) -> list[tuple]:
    """(bucket, open, high, low, close, volume) as the exchange builds its bars."""
    grouped: dict[datetime, list[tuple]] = {}
    for row in minutes:
        grouped.setdefault(bucket_of(interval, row[0]), []).append(row)
    out = []
    for bucket, rows in sorted(grouped.items()):
        traded = [r for r in rows if r[5] > 0]
        close = rows[-1][4]
        volume = sum((r[5] for r in rows), Decimal(0))
        if traded:
            highs, lows = (r[2] for r in traded), (r[3] for r in traded)
            out.append((bucket, traded[0][1], max(highs), min(lows), close, volume))
        else:
            out.append((bucket, close, close, close, close, volume))
    return out


def held_minutes(conn, symbol: str, start: datetime, end: datetime) -> list[tuple]:
    return conn.execute(
        "SELECT open_time, open, high, low, close, volume FROM binance_candle"
        " WHERE symbol = %s AND open_time >= %s AND open_time < %s ORDER BY open_time",
        (symbol, start, end),
    ).fetchall()


def served(pool, symbol: str, interval: str, start, end) -> list[tuple]:
    answer = markets.resample(Reads(pool), MARKET, symbol, interval, start, end)
    keys = ("time", "open", "high", "low", "close", "volume")
    return [tuple(c[k] for k in keys) for c in answer["candles"]]


def store(database_url, symbol: str, rows: list[list], fetched: datetime) -> None:
    """Through the ingest's store, the newest minute held passed as the ingest passes it."""
    with psycopg.connect(database_url) as direct:
        newest = candles.newest_open_time(direct, MARKET, symbol)
        candles.store_minutes(direct, MARKET, symbol, parse_klines(rows), fetched, newest)


@st.composite
def histories(draw):
    """Minutes with gaps (Coinbase sends none for a quiet minute), untraded minutes
    (Binance's volume 0 at the carried close), pages, and corrections of stored minutes."""
    first = T0 + timedelta(minutes=draw(st.integers(0, 24 * 60)))
    count = draw(st.integers(1, 5000))
    digits = st.integers(1, 99_999_999)
    rows, close = [], "0.50000000"
    for minute in range(count):
        if draw(st.booleans()) and draw(st.booleans()) and draw(st.booleans()):
            continue  # one minute in eight: no row at all
        at = first + timedelta(minutes=minute)
        if draw(st.integers(0, 3)) == 0:  # untraded
            rows.append(kline(at, close, close, close, close, "0.00000000"))
            continue
        o, c, a, b = (f"0.{draw(digits):08d}" for _ in range(4))
        high, low = max(o, c, a, key=Decimal), min(o, c, b, key=Decimal)
        rows.append(kline(at, o, high, low, c, f"{draw(digits) / 1000:.8f}"))
        close = c
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(rows) - 1)), max_size=6)))
    pages = [rows[a:b] for a, b in itertools.pairwise([0, *cuts, len(rows)]) if rows[a:b]]
    corrected = draw(st.lists(st.sampled_from(rows), max_size=5)) if rows else []
    corrections = [
        kline(datetime.fromtimestamp(r[0] / 1000, UTC), r[1], r[2], r[3], r[4], "7.00000000")
        for r in corrected
    ]
    return pages, corrections


@hypothesis.settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(hypothesis.HealthCheck),
)
@hypothesis.given(
    history=histories(),
    interval=st.sampled_from(list(markets.INTERVALS)),
    bounds=st.tuples(st.integers(-90, 6000), st.integers(1, 7000)),
)
def test_every_interval_equals_the_rule_over_the_minutes(
    database_url, conn, pool, history, interval, bounds
):
    pages, corrections = history
    symbol = next(_symbols)
    if not pages:
        with pytest.raises(NotFound):
            served(pool, symbol, interval, T0, T0 + timedelta(days=1))
        return
    for page in pages:
        store(database_url, symbol, page, T0)
    if corrections:
        store(database_url, symbol, corrections, T0 + timedelta(hours=1))
    offset, length = bounds
    start = T0 + timedelta(minutes=offset)
    end = start + timedelta(minutes=length)
    every = markets.INTERVALS[interval]
    aligned = every.floor(start)
    assert aligned == bucket_of(interval, start.replace(second=0))

    if every.count(aligned, end) > markets.MAX_BUCKETS:  # 7000 one-minute candles, say
        with pytest.raises(BadRequest):
            served(pool, symbol, interval, start, end)
        return
    want = by_the_rule(interval, held_minutes(conn, symbol, aligned, end))

    assert served(pool, symbol, interval, start, end) == want


def test_weeks_start_on_monday_and_months_on_the_first(database_url, pool):
    # Friday 2026-01-30 12:00 .. Tuesday 2026-02-03: one minute every 6 hours
    rows = [
        kline(T0 + timedelta(hours=6 * n), "1.0", "2.0", "0.5", f"1.{n}", "3") for n in range(17)
    ]
    store(database_url, "ALIGNUSDT", rows, T0)
    end = T0 + timedelta(days=5)
    weeks = [c[0] for c in served(pool, "ALIGNUSDT", "1w", T0, end)]
    months = [c[0] for c in served(pool, "ALIGNUSDT", "1M", T0, end)]
    twelves = [c[0] for c in served(pool, "ALIGNUSDT", "12h", T0, end)]
    assert weeks == [datetime(2026, 1, 26, tzinfo=UTC), datetime(2026, 2, 2, tzinfo=UTC)]
    assert [w.weekday() for w in weeks] == [0, 0]
    assert months == [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)]
    assert twelves[:2] == [T0, T0 + timedelta(hours=12)] and len(twelves) == 9


def test_a_daily_read_to_the_newest_minute_reads_no_minute_rows(database_url, conn):
    """Served from the day rollup: its cost follows the days returned, not the minutes."""
    first = datetime(2026, 1, 1, tzinfo=UTC)
    conn.execute(
        "INSERT INTO binance_candle SELECT 'DAYUSDT', t, t + interval '59.999 s',"
        " 1, 2, 0.5, 1.5, 10, 15, 3, 5, 7, t FROM generate_series(%s::timestamptz,"
        " %s::timestamptz, interval '1 minute') AS t",
        (first, first + timedelta(days=30, minutes=-1)),
    )
    with psycopg.connect(database_url) as direct:
        rollups.rebuild(direct, MARKET, "DAYUSDT")
    conn.execute("ANALYZE binance_candle; ANALYZE binance_candle_1d")
    newest = first + timedelta(days=30, minutes=-1)
    query = rollups.statements(MARKET).read["1d", "bin"]
    params = {"symbol": "DAYUSDT", "width": timedelta(days=1), "origin": EPOCH, "start": first,
              "cut": first + timedelta(days=30), "end": newest + timedelta(minutes=1)}  # fmt: skip
    assert rollups.level_for(timedelta(days=1)) == ("1d", timedelta(days=1))
    plan = conn.execute(b"EXPLAIN (ANALYZE, FORMAT JSON) " + query, params).fetchone()[0]
    scans = {}

    def walk(node):
        if "Relation Name" in node:
            scans[node["Relation Name"]] = scans.get(node["Relation Name"], 0) + node["Actual Rows"]
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    # the minutes table is partitioned by month (binance_candle_p*); its empty range may
    # be pruned away before execution: either way no minute row is read
    minutes = [rows for name, rows in scans.items() if name.startswith("binance_candle_p")]
    assert scans.get("binance_candle_1d") == 30, json.dumps(plan)[:2000]
    assert sum(minutes) == 0, json.dumps(plan)[:2000]


@pytest.mark.parametrize(
    ("interval", "count"), [("1h", 720), ("4h", 180), ("1d", 30), ("1w", 5), ("1M", 1)]
)
def test_rollup_levels_hold_one_row_per_bucket(database_url, conn, pool, interval, count):
    first = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [kline(first + timedelta(minutes=m), "1", "2", "0.5", "1.5", "1") for m in range(43200)]
    store(database_url, "LONGUSDT", rows, first)
    assert conn.execute("SELECT count(*) FROM binance_candle_1h").fetchone()[0] == 720
    assert conn.execute("SELECT count(*) FROM binance_candle_1d").fetchone()[0] == 30
    got = served(pool, "LONGUSDT", interval, first, first + timedelta(days=30))
    assert len(got) == count
    assert sum(c[5] for c in got) == 43200


def rollup_rows(conn, symbol: str) -> dict[str, list[tuple]]:
    """Every hour and day held for ``symbol``, values as the text PostgreSQL holds."""
    return {
        level: conn.execute(
            f"SELECT bucket, traded_open::text, traded_high::text, traded_low::text,"  # noqa: S608
            f" close::text, volume::text FROM {rollups.table(MARKET, level)}"
            " WHERE symbol = %s ORDER BY bucket",
            (symbol,),
        ).fetchall()
        for level in ("1h", "1d")
    }


def test_pages_added_to_hours_and_days_equal_aggregating_every_minute_again(database_url, pool):
    """The ingest's fast path: pages read from Binance's form, folded on the fetching
    thread, chained into one COPY and added to the stored hours and days, across hour,
    day and page edges, with untraded minutes and equal prices written two ways. What it
    leaves equals what aggregating every stored minute again gives, digit for digit."""
    start = datetime(2026, 3, 1, 22, 41, tzinfo=UTC)
    klines = []
    for minute in range(3100):
        at = start + timedelta(minutes=minute)
        price = f"{1 + minute % 13 / 100:.8f}"
        if minute % 5 == 0:  # untraded: the carried close, volume 0
            klines.append(kline(at, price, price, price, price, "0.00000000"))
            continue
        # a high that ties the bucket's highest in value, written with fewer digits
        high = "1.2" if minute % 7 == 0 else "1.20000000"
        row = kline(at, price, high, f"0.{9 - minute % 3}", price, f"{minute}.{minute:08d}")
        klines.append(row)
    pages = [read_klines(json.dumps(klines[a : a + 700]).encode()) for a in range(0, 3100, 700)]
    assert all(pages)
    relay_in = BinanceRelayIn(pool, None, default_symbols=[], backfill_hours=1, budget_s=10)
    for page in pages:
        relay_in.digest(page)
        assert page.folded and page.values is None
    symbol = "FOLDUSDT"
    with pool.connection() as conn:  # one page alone, then four as one
        assert relay_in.store_pages(conn, symbol, pages[:1], None) == 700
    with pool.connection() as conn:
        assert relay_in.store_pages(conn, symbol, pages[1:], pages[0].upto) == 2400
    with pool.connection() as conn:
        added = rollup_rows(conn, symbol)
        rollups.rebuild(conn, MARKET, symbol)
        again = rollup_rows(conn, symbol)
        conn.rollback()
    assert len(added["1h"]) == 53 and len(added["1d"]) == 4  # 22:41 on the 1st to 02:20 on the 4th
    assert added == again


def test_pages_merged_one_after_another_in_one_transaction_each_store_their_own(pool):
    """Overlapping pages (not chained) are stored one by one in one transaction: each
    merge stores what its page sent and nothing staged for the page before it."""
    start = datetime(2026, 3, 1, 21, tzinfo=UTC)

    def minute(at: int, volume: str) -> list:
        return kline(start + timedelta(minutes=at), "1.5", "2", "1.0", "1.6", volume)

    def page(rows: list[list]):
        return read_klines(json.dumps(rows).encode())

    first = page([minute(m, "1") for m in range(10)])
    relay_in = BinanceRelayIn(pool, None, default_symbols=[], backfill_hours=1, budget_s=10)
    symbol = "MERGEUSDT"
    with pool.connection() as conn:
        assert relay_in.store_pages(conn, symbol, [first], None) == 10
    # each page sends minute 5 again, the second with another volume, then new minutes
    again = [
        page([minute(5, "3"), *(minute(m, "1") for m in range(10, 70))]),
        page([minute(5, "4"), *(minute(m, "1") for m in range(70, 130))]),
        page([minute(100, "1"), *(minute(m, "1") for m in range(130, 200))]),
    ]
    for each in again:
        relay_in.digest(each)
    assert Minutes.chain(again) is None  # so stored page by page
    with pool.connection() as conn:
        # 60 + 1 changed, 60 + 1 changed again, 70 (minute 100 is as stored)
        assert relay_in.store_pages(conn, symbol, again, first.upto) == 192
    with pool.connection() as conn:
        held = conn.execute(
            "SELECT volume FROM binance_candle WHERE symbol = %s AND open_time = %s",
            (symbol, start + timedelta(minutes=5)),
        ).fetchone()
        assert held == (Decimal("4"),)  # the last one sent
        added = rollup_rows(conn, symbol)
        rollups.rebuild(conn, MARKET, symbol)
        assert rollup_rows(conn, symbol) == added
        conn.rollback()
