"""The relay-in ledger: advisory locks against double firing, the runs list, /health."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg

from tests.conftest import bearer
from tests.served import ROOT
from tests.upstreams import FakeBinance, FakeCoinAPI, make_klines, make_trades

NOW = datetime(2022, 1, 1, 12, tzinfo=UTC)
BTC = "BITSTAMP_SPOT_BTC_USD"
IN = "/relay-api/v1/relay-in"


def test_a_second_call_for_the_same_source_and_symbol_gets_409_at_once(
    make_app, config, blocking_coinapi, in_headers, conn
):
    server, arrived, release = blocking_coinapi
    app = make_app(config.replace(coinapi_url=server.url_for("/").rstrip("/")), now=lambda: NOW)
    first = {}
    worker = threading.Thread(
        target=lambda: first.update(resp=app.get(IN, {"Symbol": "BTC"}, headers=in_headers))
    )
    worker.start()
    assert arrived.wait(5)

    second = app.get(IN, {"Symbol": "btc"}, headers=in_headers, status=409)

    assert second.json["message"] == "Conflict: Relay-in already running"
    release.set()
    worker.join(10)
    assert first["resp"].status_int == 204
    statuses = [r[0] for r in conn.execute("SELECT status FROM relay_run ORDER BY id")]
    assert statuses == ["succeeded", "rejected"]
    # The lock went with the run: the next call proceeds.
    app.get(IN, {"Symbol": "BTC"}, headers=in_headers, status=204)


def test_other_sources_and_symbols_run_in_parallel(
    make_app, config, blocking_coinapi, httpserver, in_headers
):
    server, arrived, release = blocking_coinapi
    binance = FakeBinance(httpserver)
    binance.add("ADAUSDT", make_klines(NOW - timedelta(minutes=5), 3))
    other = FakeCoinAPI(httpserver)
    other.add("KRAKEN_SPOT_BTC_USD", make_trades(NOW - timedelta(hours=1), 2))
    app = make_app(
        config.replace(
            coinapi_url=server.url_for("/").rstrip("/"),
            binance_url=httpserver.url_for("/").rstrip("/"),
        ),
        now=lambda: NOW,
    )
    worker = threading.Thread(target=lambda: app.get(IN, {"Symbol": "BTC"}, headers=in_headers))
    worker.start()
    assert arrived.wait(5)
    try:
        app.post_json(f"{IN}/binance", {"symbols": ["ADAUSDT"]}, headers=in_headers, status=201)
        # Same source, another symbol: no conflict either (it fails upstream here, not 409).
        resp = app.get(IN, {"Symbol": "ETH"}, headers=in_headers, expect_errors=True)
        assert resp.status_int != 409
    finally:
        release.set()
        worker.join(10)


def test_runs_list_and_health_reflect_failed_and_successful_runs(
    make_app, config, httpserver, conn
):
    coinapi = FakeCoinAPI(httpserver)
    coinapi.add(BTC, make_trades(NOW - timedelta(hours=1), 3))
    clock = {"now": NOW}
    app = make_app(config, now=lambda: clock["now"])
    scheduler = bearer("relay:in", sub="heroku-scheduler")

    app.get(IN, {"Symbol": "BTC"}, headers=scheduler, status=201)
    clock["now"] = NOW + timedelta(minutes=10)
    coinapi.fail_on_call = {2: (500, "{}"), 3: (500, "{}"), 4: (500, "{}")}
    app.get(IN, {"Symbol": "BTC"}, headers=scheduler, status=502)

    runs = app.get(f"{IN}/runs", headers=scheduler).json["data"]["runs"]
    assert [r["status"] for r in runs] == ["failed", "succeeded"]
    failed, succeeded = runs
    assert failed["source"] == "coinapi" and failed["symbols"] == [BTC]
    assert failed["fired_by"] == "heroku-scheduler"
    assert failed["http_status"] == 502 and "500" in failed["error"]
    assert failed["started_at"] == "2022-01-01T12:10:00Z"
    assert succeeded["processed"] == 3 and succeeded["http_status"] == 201
    assert succeeded["complete"] is True and succeeded["error"] is None

    assert app.get(f"{IN}/runs", {"limit": 1}, headers=scheduler).json["data"]["runs"] == [failed]
    assert app.get(f"{IN}/runs", {"source": "ecb"}, headers=scheduler).json["data"]["runs"] == []
    app.get(f"{IN}/runs", {"source": "nope"}, headers=scheduler, status=400)
    app.get(f"{IN}/runs", headers=bearer("relay:out"), status=403)

    health = app.get("/health").json["data"]["sources"]
    assert health["coinapi"] == {"last_success": "2022-01-01T12:00:00Z", "overdue": False}
    assert health["binance"] == {"last_success": None, "overdue": True}
    clock["now"] = NOW + timedelta(minutes=45)  # coinapi is due every 30 minutes by default
    assert app.get("/health").json["data"]["sources"]["coinapi"]["overdue"] is True


def running_row(conn, source: str, symbol: str) -> int:
    return conn.execute(
        "INSERT INTO relay_run (source, symbols, fired_by, started_at, status) "
        "VALUES (%s, %s, 'elsewhere', %s, 'running') RETURNING id",
        (source, [symbol], NOW - timedelta(minutes=5)),
    ).fetchone()[0]


def run_lock_held(conn, run_id: int) -> bool:
    """Whether some session holds the run's lock (the bigint-key advisory lock)."""
    return conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 "
        "AND granted AND ((classid::bigint << 32) | objid::bigint) = %s)",
        (run_id,),
    ).fetchone()[0]


def statuses(conn) -> dict[int, tuple]:
    rows = conn.execute("SELECT id, status, finished_at IS NOT NULL, error FROM relay_run")
    return {run_id: (status, finished, error) for run_id, status, finished, error in rows}


def test_a_run_whose_process_is_gone_is_abandoned_by_the_next_run_of_its_source(
    make_app, config, httpserver, conn, database_url, in_headers
):
    FakeCoinAPI(httpserver).add(BTC, make_trades(NOW - timedelta(hours=1), 2))
    app = make_app(config, now=lambda: NOW)
    dead, alive = running_row(conn, "coinapi", "X"), running_row(conn, "coinapi", "Y")
    other_source = running_row(conn, "binance", "Z")
    # Each run's process holds its run's lock for as long as it lives; one of them died.
    with psycopg.connect(database_url, autocommit=True) as gone:
        gone.execute("SELECT pg_advisory_lock(%s)", (dead,))
    with psycopg.connect(database_url, autocommit=True) as living:
        living.execute("SELECT pg_advisory_lock(%s)", (alive,))

        app.get(IN, {"Symbol": "BTC"}, headers=in_headers, status=201)

        rows = statuses(conn)
        status, finished, error = rows[dead]
        assert (status, finished) == ("abandoned", True) and "stopped" in error
        assert rows[alive] == ("running", False, None)
        assert rows[other_source] == ("running", False, None)  # another source's business
        runs = app.get(f"{IN}/runs", {"source": "coinapi"}, headers=in_headers).json["data"]
        assert [r["status"] for r in runs["runs"]] == ["succeeded", "running", "abandoned"]
        # The run in progress held its own lock (so no sweep elsewhere could take it).
        assert not run_lock_held(conn, max(rows))


ORPHAN = """
import sys
import webtest
from relay import db
from relay.app import create_app
from relay.config import Config
from tests.conftest import SECRET, bearer

url, coinapi = sys.argv[1:]
pool = db.make_pool(url, open=True)
config = Config(database_url=url, jwt_secrets=(SECRET,)).replace(coinapi_url=coinapi)
webtest.TestApp(create_app(config, pool)).get(
    "/relay-api/v1/relay-in", {"Symbol": "BTC"}, headers=bearer("relay:in")
)
"""


def test_a_run_whose_process_is_killed_shows_abandoned_not_running(
    make_app, config, blocking_coinapi, conn, database_url, in_headers
):
    server, arrived, release = blocking_coinapi
    coinapi_url = server.url_for("/").rstrip("/")
    orphan = subprocess.Popen(
        [sys.executable, "-c", ORPHAN, database_url, coinapi_url], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert arrived.wait(20), "the run in the other process never reached CoinAPI"
        (run_id,) = statuses(conn)
        assert statuses(conn)[run_id][0] == "running"
        os.kill(orphan.pid, signal.SIGKILL)
        orphan.wait(10)
    finally:
        orphan.kill()
        release.set()
    app = make_app(config.replace(coinapi_url=coinapi_url), now=lambda: NOW)

    # The same symbol is free again (its lock went with the process), and the run shows
    # how it ended as soon as PostgreSQL has noticed.
    app.get(IN, {"Symbol": "BTC"}, headers=in_headers, status=204)

    deadline = time.monotonic() + 10
    while statuses(conn)[run_id][0] == "running" and time.monotonic() < deadline:
        app.get(IN, {"Symbol": "BTC"}, headers=in_headers, status=204)
        time.sleep(0.1)
    assert statuses(conn)[run_id][:2] == ("abandoned", True)
