"""1-minute candles live in monthly partitions: new months are made as the ingest reaches
them, old ones dropped whole by RELAY_RETAIN_CANDLES_1M; rollups stay; a read that needs
removed minutes is a 404 naming where they begin, never an answer with a hole in it."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from relay import partitions
from relay.config import Config, ConfigError
from tests.upstreams import FakeBinance, FakeCoinAPI, make_klines, make_trades

IN = "/relay-api/v1/relay-in/binance"
CANDLES = "/relay-api/v1/relay-out/candles"
RECORDS = "/relay-api/v1/relay-out/records"
BTC = "BITSTAMP_SPOT_BTC_USD"
ROOT = Path(__file__).resolve().parent.parent
# The migration made binance_candle_p_before the partition of everything before the month
# after the one it ran in (the test database is migrated now): months after it are new.
THIS_MONTH = partitions.month_start(datetime.now(UTC))
FIRST_NEW = partitions.next_month(THIS_MONTH)
M1 = partitions.next_month(FIRST_NEW)
M2 = partitions.next_month(M1)
OLD = THIS_MONTH - timedelta(days=20)  # in binance_candle_p_before
NOW = M2 + timedelta(hours=1, seconds=30)


def reset_partitions(url: str) -> None:
    """The tables as the migrations leave them: one partition, everything before FIRST_NEW
    (the session's database is shared: the months a test made or dropped are put back)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("binance_candle", "symbol_data"):
            for name, _, _ in partitions.bounds(conn, table):
                conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
            conn.execute(
                sql.SQL(
                    "CREATE TABLE {} PARTITION OF {} FOR VALUES FROM (MINVALUE) TO ({})"
                ).format(
                    sql.Identifier(f"{table}_p_before"),
                    sql.Identifier(table),
                    sql.Literal(FIRST_NEW),
                )
            )


@pytest.fixture(autouse=True)
def one_partition(database_url):
    reset_partitions(database_url)
    yield
    reset_partitions(database_url)


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def config(config, httpserver):
    return config.replace(binance_url=httpserver.url_for("/").rstrip("/"))


@pytest.fixture
def binance(httpserver):
    fake = FakeBinance(httpserver)
    # 30 old minutes, then two hours across the turn of the month M1 -> M2
    fake.add("ADAUSDT", make_klines(OLD, 30) + make_klines(M2 - timedelta(hours=1), 120, seed=3))
    return fake


def relay_in(make_app, config, in_headers, now=NOW, **changes):
    app = make_app(config.replace(binance_backfill_hours=24 * 120, **changes), now=lambda: now)
    return app, app.post_json(IN, {"symbols": ["ADAUSDT"]}, headers=in_headers, status=201)


def partition_names(conn) -> set[str]:
    return {name for name, _, _ in partitions.bounds(conn, "binance_candle")}


def test_the_ingest_makes_the_months_it_reaches(make_app, config, binance, conn, in_headers):
    _, resp = relay_in(make_app, config, in_headers)
    assert resp.json["data"]["processed"] == 150
    # only months that hold a row are made (none for FIRST_NEW: the page skips it)
    made = {f"binance_candle_p{month:%Y%m}" for month in (M1, M2)}
    assert partition_names(conn) == {"binance_candle_p_before", *made}
    by_partition = dict(
        conn.execute(
            "SELECT tableoid::regclass::text, count(*) FROM binance_candle GROUP BY 1"
        ).fetchall()
    )
    assert by_partition == {
        "binance_candle_p_before": 30,
        f"binance_candle_p{M1:%Y%m}": 60,
        f"binance_candle_p{M2:%Y%m}": 60,
    }


def test_retention_drops_whole_old_months_and_reads_say_what_is_gone(
    make_app, config, binance, conn, in_headers, out_headers
):
    relay_in(make_app, config, in_headers)  # everything held, then retention is set
    binance.add("ADAUSDT", make_klines(M2 + timedelta(hours=1), 1, seed=4))
    later = NOW + timedelta(minutes=1)
    keep = later - (M1 + timedelta(days=1))  # about a month, whatever the months' lengths
    app, resp = relay_in(make_app, config, in_headers, now=later, retain_candles_1m=keep)

    # the cutoff, NOW - keep, lies inside M1: every month ending before it is dropped whole
    assert resp.json["data"]["dropped"] == ["binance_candle_p_before"]
    assert partition_names(conn) == {f"binance_candle_p{M1:%Y%m}", f"binance_candle_p{M2:%Y%m}"}
    assert conn.execute("SELECT count(*) FROM binance_candle").fetchone()[0] == 121
    # no row ever fell in FIRST_NEW, so it had no partition: minutes are held from it on
    assert conn.execute("SELECT held_from FROM retention").fetchone()[0] == FIRST_NEW

    def candles(interval, start, end, status=200):
        query = {"symbol": "ADAUSDT", "interval": interval, "start": iso(start), "end": iso(end)}
        return app.get(CANDLES, query, headers=out_headers, status=status).json

    # the old minutes' hour and day are still there: rollups are kept
    (hour,) = candles("1h", OLD, OLD + timedelta(hours=2))["data"]["candles"]
    volume = sum(Decimal(k[5]) for k in binance.klines["ADAUSDT"][:30])
    assert hour["time"] == iso(OLD) and Decimal(hour["volume"]) == volume
    assert len(candles("1d", OLD, OLD + timedelta(days=1))["data"]["candles"]) == 1
    # their minutes are not: a 404 naming where minutes begin now, not an empty list
    for interval, start, end in (
        ("1m", OLD, OLD + timedelta(minutes=30)),
        ("5m", FIRST_NEW - timedelta(hours=2), FIRST_NEW + timedelta(hours=2)),  # partly
        ("1h", OLD, OLD + timedelta(minutes=90)),  # its last half hour needs the minutes
    ):
        gone = candles(interval, start, end, status=404)
        assert gone["data"]["held_from"] == iso(FIRST_NEW), interval
        assert f"before {iso(FIRST_NEW)} are no longer held" in gone["message"]
    # so without a start (the 500 buckets before end), when end is before what is held
    query = {"symbol": "ADAUSDT", "interval": "1m", "end": iso(OLD + timedelta(minutes=30))}
    gone = app.get(CANDLES, query, headers=out_headers, status=404).json
    assert gone["data"]["held_from"] == iso(FIRST_NEW)
    # while one ending after it starts where the minutes do: none were stored there
    query = {**query, "end": iso(FIRST_NEW + timedelta(hours=1))}
    assert app.get(CANDLES, query, headers=out_headers).json["data"]["candles"] == []
    # what is held is served as before
    held = candles("1m", M2 - timedelta(hours=1), M2 + timedelta(hours=1))["data"]["candles"]
    assert len(held) == 120


def test_a_relay_in_with_retention_fetches_nothing_it_would_drop(
    make_app, config, binance, conn, in_headers
):
    keep = NOW - (M1 + timedelta(days=1))
    _, resp = relay_in(make_app, config, in_headers, retain_candles_1m=keep)
    assert resp.json["data"]["processed"] == 120  # not the 30 old minutes
    asked = [int(r["startTime"]) for r in binance.requests if r["path"] == "/api/v3/klines"]
    assert min(asked) == int((NOW - keep).timestamp() * 1000)


def test_without_retention_nothing_is_dropped(make_app, config, binance, conn, in_headers):
    _, resp = relay_in(make_app, config, in_headers)
    assert "dropped" not in resp.json["data"]
    assert conn.execute("SELECT count(*) FROM retention").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("raw", "kept"),
    [("", None), ("36h", timedelta(hours=36)), ("90d", timedelta(days=90)),
     ("52w", timedelta(weeks=52))],
)  # fmt: skip
def test_retention_is_read_as_a_duration(raw, kept):
    env = {"DATABASE_URL": "postgresql://x/y", "RELAY_JWT_SECRET": "s" * 40}
    assert Config.from_env({**env, "RELAY_RETAIN_CANDLES_1M": raw}).retain_candles_1m == kept


@pytest.mark.parametrize(
    "raw", ["1h", "23h", "90", "90 days", "-5d", "1y", "9999999d", "999999w", "36526d"]
)
def test_a_retention_that_is_not_a_duration_of_a_day_or_more_is_refused(raw):
    env = {"DATABASE_URL": "postgresql://x/y", "RELAY_JWT_SECRET": "s" * 40}
    with pytest.raises(ConfigError, match="RELAY_RETAIN_CANDLES_1M"):
        Config.from_env({**env, "RELAY_RETAIN_CANDLES_1M": raw})


def test_the_prune_command(database_url, conn):
    env = {**os.environ, "DATABASE_URL": database_url, "RELAY_RETAIN_CANDLES_1M": ""}

    def prune(**extra):
        return subprocess.run(
            [sys.executable, "-m", "relay", "prune"], cwd=ROOT, env={**env, **extra},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    unset = prune()
    assert unset.returncode == 0 and "RELAY_RETAIN_CANDLES_1M is not set" in unset.stdout
    kept = prune(RELAY_RETAIN_CANDLES_1M="30d")
    assert kept.returncode == 0, kept.stderr
    # every month held is younger than 30 days' cutoff here: each table says so
    assert "binance_candle: dropped 0 month(s)" in kept.stdout
    assert "coinbase_candle: dropped 0 month(s)" in kept.stdout
    assert partition_names(conn) == {"binance_candle_p_before"}
    bad = prune(RELAY_RETAIN_CANDLES_1M="5m")
    assert bad.returncode == 2 and "RELAY_RETAIN_CANDLES_1M" in bad.stderr
    down = prune(DATABASE_URL="postgresql://relay:secret-pw@127.0.0.1:1/relay")
    assert down.returncode == 1 and "the database is unreachable" in down.stderr
    assert "Traceback" not in down.stderr and "secret-pw" not in down.stderr


def test_trade_retention_drops_old_months_and_records_say_what_is_gone(
    make_app, config, httpserver, conn, in_headers, out_headers
):
    coinapi = FakeCoinAPI(httpserver)
    coinapi.add(BTC, make_trades(OLD, 5) + make_trades(M2 - timedelta(minutes=1), 120, seed=2))
    later = NOW + timedelta(minutes=5)
    keep = later - (M1 + timedelta(days=1))

    def relay_in_trades(now, **changes):
        app = make_app(
            config.replace(
                coinapi_url=httpserver.url_for("/").rstrip("/"),
                coinapi_backfill_hours=24 * 120,
                **changes,
            ),
            now=lambda: now,
        )
        query = {"Symbol": "BTC"}
        return app, app.get("/relay-api/v1/relay-in", query, headers=in_headers, status=201)

    _, first = relay_in_trades(NOW)  # everything held, then retention is set
    assert first.json["data"]["processed"] == 125
    coinapi.add(BTC, make_trades(NOW + timedelta(minutes=1), 1, seed=3))
    app, resp = relay_in_trades(later, retain_trades=keep)

    assert "symbol_data_p_before" in resp.json["data"]["dropped"]
    assert conn.execute("SELECT count(*) FROM symbol_data").fetchone()[0] == 121
    made = {f"symbol_data_p{month:%Y%m}" for month in (M1, M2)}
    assert {name for name, _, _ in partitions.bounds(conn, "symbol_data")} == made

    def records(status=200, **query):
        query = {"symbol": "BTC", **{k: iso(v) for k, v in query.items()}}
        return app.get(RECORDS, query, headers=out_headers, status=status).json

    gone = records(404, start=OLD)
    assert gone["data"]["held_from"] == iso(FIRST_NEW)
    assert f"trades before {iso(FIRST_NEW)} are no longer held" in gone["message"]
    assert records(404, end=OLD + timedelta(hours=1))["data"]["held_from"] == iso(FIRST_NEW)
    assert len(records(start=M2 - timedelta(minutes=1))["data"]["records"]) == 100


def test_a_symbol_resuming_from_before_the_cutoff_starts_at_it(
    make_app, config, httpserver, conn, in_headers
):
    """A symbol quiet for longer than retention fetches nothing retention would drop."""
    quiet = FakeBinance(httpserver)
    quiet.add("ADAUSDT", make_klines(OLD, 30))
    relay_in(make_app, config, in_headers, now=OLD + timedelta(hours=1))
    quiet.add("ADAUSDT", make_klines(M2, 3, seed=2))
    keep = NOW - (M1 + timedelta(days=1))
    quiet.requests.clear()
    _, resp = relay_in(make_app, config, in_headers, retain_candles_1m=keep)
    assert resp.json["data"]["processed"] == 3
    asked = [int(r["startTime"]) for r in quiet.requests if r["path"] == "/api/v3/klines"]
    assert asked[0] == int((NOW - keep).timestamp() * 1000)


def test_a_page_that_spans_many_months_is_refused_before_any_partition_is_made(
    make_app, config, httpserver, conn, in_headers
):
    odd = FakeBinance(httpserver)
    stray = [make_klines(month + timedelta(days=2), 1)[0] for month in (FIRST_NEW, M1, M2)]
    odd.add("ADAUSDT", make_klines(OLD, 2) + stray)
    app = make_app(config.replace(binance_backfill_hours=24 * 120), now=lambda: NOW)
    resp = app.post_json(IN, {"symbols": ["ADAUSDT"]}, headers=in_headers, status=502)
    assert "spans 4 months" in resp.json["message"]
    assert partition_names(conn) == {"binance_candle_p_before"}
