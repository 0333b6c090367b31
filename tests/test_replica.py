"""Past one database: reads from a streaming replica, and app servers that agree.

The replica is a real hot standby of the test server (tests/replica.py). Which database a
read went to is told by the pools' own request counts and, where it matters, by what only
that database can answer (the replica with its replay paused still holds the old rows).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import requests

from relay import auth
from relay.notify import announce
from relay.reads import make_replica_pool
from tests.conftest import SECRET, bearer, eventually
from tests.served import ROOT, gunicorn
from tests.upstreams import FakeBinance, make_klines, make_ticker

RECORDS = "/relay-api/v1/relay-out/records"
PRICE = "/relay-api/v1/relay-out/price"
IN = "/relay-api/v1/relay-in"
BTC = "BITSTAMP_SPOT_BTC_USD"
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
OUT = bearer("relay:out")


@pytest.fixture
def replica_pool(replica):
    replica.wait_caught_up()  # past the emptying of the tables before this test
    pool = make_replica_pool(replica.url, min_size=1, max_size=2, timeout=1, open=True)
    yield pool
    pool.close()


@pytest.fixture
def reader(make_app, config, httpserver, listener, replica_pool):
    """An app reading from the replica, with no answer cache: every request reads."""
    config = config.replace(answer_cache=False, binance_url=httpserver.url_for("/").rstrip("/"))
    app = make_app(config, now=lambda: NOW, changes=listener, replica=replica_pool)
    yield app
    app.app.reads.stop()


def store_trades(conn, price: int, *, notify: bool = True) -> None:
    """Give BTC one trade at ``price``, as a relay-in would: written and announced at once."""
    with conn.transaction():
        conn.execute("INSERT INTO symbol (symbol_id) VALUES (%s) ON CONFLICT DO NOTHING", (BTC,))
        conn.execute("DELETE FROM symbol_data")
        conn.execute(
            "INSERT INTO symbol_data SELECT gen_random_uuid(), id, %s, %s, %s, 1, 'BUY' "
            "FROM symbol WHERE symbol_id = %s",
            (NOW, NOW, price, BTC),
        )
        if notify:
            announce(conn, "trades")


def price(app) -> str:
    return app.get(RECORDS, {"symbol": "BTC"}, headers=OUT).json["data"]["records"][0]["price"]


class Requests:
    """How many connections a pool has lent since the last look."""

    def __init__(self, pool):
        self.pool = pool
        self.seen = self._count()

    def _count(self) -> int:
        return self.pool.get_stats().get("requests_num", 0)

    def new(self) -> int:
        count = self._count()
        new, self.seen = count - self.seen, count
        return new


def test_relay_out_reads_go_to_the_replica(reader, replica, replica_pool, pool, conn):
    store_trades(conn, 7000)
    replica.wait_caught_up()
    assert price(reader) == "7000"
    primary, standby = Requests(pool), Requests(replica_pool)

    with replica.paused():
        # Changed without a NOTIFY: the primary holds 7500, the paused replica 7000.
        store_trades(conn, 7500, notify=False)
        assert price(reader) == "7000"
        assert (primary.new(), standby.new()) == (0, 1)

    health = reader.get("/health").json["data"]
    assert health["replica"]["status"] == "ok"
    assert isinstance(health["replica"]["lag_bytes"], int)
    connections = replica.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'relay-replica'"
    )[0]
    assert connections >= 1  # the replica pool's, named so operators can tell them apart


def test_a_change_notified_before_the_replica_replays_it_is_read_from_the_primary(
    reader, replica, replica_pool, pool, listener, conn
):
    store_trades(conn, 7000)
    replica.wait_caught_up()
    assert price(reader) == "7000"
    primary, standby = Requests(pool), Requests(replica_pool)

    with replica.paused():
        known = listener.wal_position("trades")
        store_trades(conn, 8000)
        assert eventually(lambda: listener.wal_position("trades") > known)  # heard of it
        assert price(reader) == "8000"
        assert replica.execute("SELECT price::int FROM symbol_data")[0] == 7000  # not replayed
        # The replica was asked how far it had replayed, and the primary answered.
        assert (primary.new(), standby.new()) == (1, 1)
        # Other concerns, unchanged since, are still read from the replica.
        reader.get("/relay-api/v1/relay-out/dashboard", headers=OUT, status=204)
        assert (primary.new(), standby.new()) == (0, 1)

    replica.wait_caught_up()
    assert price(reader) == "8000"
    assert (primary.new(), standby.new()) == (0, 1)  # replayed: the replica again


def test_the_worker_that_ran_a_relay_in_reads_its_own_writes_from_the_primary(
    reader, replica, replica_pool, pool, httpserver, in_headers
):
    binance = FakeBinance(httpserver)
    binance.add("ADAUSDT", make_klines(NOW - timedelta(minutes=30), 30))
    binance.tickers["ADAUSDT"] = make_ticker("ADAUSDT", "0.50000000", NOW)
    primary, standby = Requests(pool), Requests(replica_pool)
    with replica.paused():
        reader.post_json(f"{IN}/binance", {"symbols": ["ADAUSDT"]}, headers=in_headers)
        primary.new()
        resp = reader.get(PRICE, {"currency": "ADAUSDT"}, headers=OUT)
        assert resp.json["data"]["price"] == "0.50000000"
        assert (primary.new(), standby.new()) == (1, 1)
        assert replica.execute("SELECT count(*) FROM binance_ticker")[0] == 0


def test_with_the_replica_down_answers_come_from_the_primary(
    reader, replica, replica_pool, pool, conn, caplog
):
    store_trades(conn, 7000)
    replica.wait_caught_up()
    assert price(reader) == "7000"
    reader.app.reads.retry_s = 0.2
    primary, standby = Requests(pool), Requests(replica_pool)
    caplog.set_level(logging.INFO, logger="relay.reads")

    replica.stop()
    try:
        started = time.monotonic()
        assert price(reader) == "7000"
        first = time.monotonic() - started
        started = time.monotonic()
        for _ in range(5):
            assert price(reader) == "7000"
        after = (time.monotonic() - started) / 5
        assert (primary.new(), standby.new()) == (6, 1)  # the replica asked once
        health = reader.get("/health").json["data"]  # 200: the primary answers
        assert health["replica"] == {"status": "unavailable", "reason": "PoolTimeout"}
        lost = [r for r in caplog.records if "read replica unavailable" in r.getMessage()]
        assert len(lost) == 1  # said once, not per request
        assert "@" not in lost[0].getMessage() and "host=" not in lost[0].getMessage()
        # One wait of the replica pool's timeout (1 s) when it is found gone, then none.
        assert first < 3.0, first
        assert after < 0.5, after
    finally:
        replica.start()

    assert eventually(lambda: reader.get("/health").json["data"]["replica"]["status"] == "ok")
    assert any("read replica is back" in r.getMessage() for r in caplog.records)
    standby.new()
    assert price(reader) == "7000"
    assert standby.new() == 1


# -- two app servers on one database ----------------------------------------------------------


@pytest.fixture
def two_servers(database_url, replica, httpserver, blocking_coinapi, tmp_path):
    """Two gunicorn servers (one worker each) on the test database, reading its replica."""
    replica.wait_caught_up()
    env = {
        "DATABASE_URL": database_url,
        "DATABASE_REPLICA_URL": replica.url,
        "RELAY_JWT_SECRET": SECRET,
        "WEB_CONCURRENCY": "1",
        "BINANCE_URL": httpserver.url_for("/").rstrip("/"),
        "COINAPI_URL": blocking_coinapi[0].url_for("/").rstrip("/"),
        "COINAPI_KEY": "test-coinapi-key",
    }
    with gunicorn(env, tmp_path / "a.log") as a, gunicorn(env, tmp_path / "b.log") as b:
        yield a, b
        for server in (a, b):  # both shut down at once, not one after the other
            server.proc.terminate()


def get_price(server, headers) -> str | int:
    resp = requests.get(f"{server.url}{PRICE}", {"currency": "ADAUSDT"}, headers=headers, timeout=5)
    return resp.json()["data"]["price"] if resp.status_code == 200 else resp.status_code


def test_two_servers_on_one_database_agree_on_answers_locks_and_revocations(
    two_servers, blocking_coinapi, httpserver, conn, database_url, replica
):
    a, b = two_servers
    in_headers = bearer("relay:in")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    binance = FakeBinance(httpserver)
    binance.add("ADAUSDT", make_klines(now - timedelta(minutes=30), 30))
    binance.tickers["ADAUSDT"] = make_ticker("ADAUSDT", "0.50000000", now)
    assert get_price(b, OUT) == 404

    # Cache: b caches its answer; a relay-in through a tells b, which answers anew.
    binance_in = f"{a.url}{IN}/binance"
    body = {"symbols": ["ADAUSDT"]}
    assert requests.post(binance_in, json=body, headers=in_headers, timeout=10).status_code == 201
    assert eventually(lambda: get_price(b, OUT) == "0.50000000")
    conn.execute("UPDATE binance_ticker SET last_price = 9")  # behind relay's back: no NOTIFY
    replica.wait_caught_up()
    assert get_price(b, OUT) == "0.50000000"  # b serves what it cached
    binance.tickers["ADAUSDT"] = make_ticker("ADAUSDT", "0.75000000", now + timedelta(minutes=1))
    assert requests.post(binance_in, json=body, headers=in_headers, timeout=10).ok
    assert eventually(lambda: get_price(b, OUT) == "0.75000000")

    # Locks: a relay-in running on a holds its lock against b.
    _, arrived, release = blocking_coinapi
    first = {}
    running = threading.Thread(
        target=lambda: first.update(
            status=requests.get(f"{a.url}{IN}", {"Symbol": "BTC"}, headers=in_headers, timeout=15)
        )
    )
    running.start()
    try:
        assert arrived.wait(5)
        second = requests.get(f"{b.url}{IN}", {"Symbol": "BTC"}, headers=in_headers, timeout=5)
        assert second.status_code == 409
        assert second.json()["message"] == "Conflict: Relay-in already running"
    finally:
        release.set()
        running.join(15)
    assert first["status"].status_code == 204

    # Revocation: a token both accept, revoked as operators do (python -m relay revoke),
    # is refused by both.
    token = auth.mint_token(SECRET, "leaked", ["relay:out"], 600)
    leaked = {"Authorization": f"Bearer {token}"}
    assert get_price(a, leaked) == get_price(b, leaked) == "0.75000000"
    jti = jwt.decode(token, SECRET, algorithms=["HS256"])["jti"]
    subprocess.run(
        [sys.executable, "-m", "relay", "revoke", jti],
        cwd=ROOT,
        env={"DATABASE_URL": database_url, "RELAY_JWT_SECRET": SECRET, "PATH": ""},
        check=True,
        capture_output=True,
        timeout=30,
    )
    assert eventually(lambda: get_price(a, leaked) == get_price(b, leaked) == 401, timeout=3.5)
