"""The answer cache and revocations follow the database across workers (LISTEN/NOTIFY)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from relay import auth
from relay.changes import Changes
from tests.conftest import SECRET, eventually
from tests.tcpproxy import StallingProxy
from tests.upstreams import FakeBinance, make_klines, make_ticker

PRICE = "/relay-api/v1/relay-out/price"
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


@pytest.fixture
def binance(httpserver):
    fake = FakeBinance(httpserver)
    fake.add("ADAUSDT", make_klines(NOW - timedelta(minutes=30), 30))
    fake.tickers["ADAUSDT"] = make_ticker("ADAUSDT", "0.50000000", NOW)
    return fake


@pytest.fixture
def workers(make_app, config, httpserver, listener, database_url):
    """Two apps as two gunicorn workers would have them: each its own listener."""
    config = config.replace(binance_url=httpserver.url_for("/").rstrip("/"))
    writer_changes = Changes(database_url, retry_s=0.1).start()
    assert writer_changes.wait_live(5)
    writer = make_app(config, now=lambda: NOW, changes=writer_changes)
    reader = make_app(config, now=lambda: NOW, changes=listener)
    yield writer, reader
    writer_changes.stop()


def price(app, headers):
    resp = app.get(PRICE, {"currency": "ADAUSDT"}, headers=headers, expect_errors=True)
    return resp.json["data"].get("price") if resp.status_int == 200 else resp.status_int


def test_answers_are_cached_until_a_write_anywhere_announces_a_change(
    workers, binance, conn, in_headers, out_headers
):
    writer, reader = workers
    writer.post_json("/relay-api/v1/relay-in/binance", {"symbols": ["ADAUSDT"]}, headers=in_headers)
    assert eventually(lambda: price(reader, out_headers) == "0.50000000")

    # A change behind the relay's back (no NOTIFY): the reader keeps its answer...
    conn.execute(
        "UPDATE binance_ticker SET last_price = 9, close_time = close_time + interval '1h'"
    )
    assert price(reader, out_headers) == "0.50000000"
    # ...and the writing worker answers from the new data at once after its own relay-in.
    binance.tickers["ADAUSDT"] = make_ticker("ADAUSDT", "0.75000000", NOW + timedelta(hours=2))
    writer.post_json("/relay-api/v1/relay-in/binance", {"symbols": ["ADAUSDT"]}, headers=in_headers)
    assert price(writer, out_headers) == "0.75000000"
    # The other worker hears of it by NOTIFY.
    assert eventually(lambda: price(reader, out_headers) == "0.75000000")


def test_a_revocation_reaches_every_worker(workers, database_url, listener):
    _, reader = workers
    token = auth.mint_token(SECRET, "leaked", ["relay:out"], 600)
    headers = {"Authorization": f"Bearer {token}"}
    assert price(reader, headers) == 404  # accepted: no data yet
    jti = jwt.decode(token, SECRET, algorithms=["HS256"])["jti"]
    from relay import db

    with db.make_pool(database_url, open=True) as pool:
        auth.Revocations(pool).revoke(jti)
    assert eventually(lambda: price(reader, headers) == 401)


def test_without_a_listener_nothing_is_cached(
    workers, binance, conn, in_headers, out_headers, listener
):
    writer, reader = workers
    writer.post_json("/relay-api/v1/relay-in/binance", {"symbols": ["ADAUSDT"]}, headers=in_headers)
    assert eventually(lambda: price(reader, out_headers) == "0.50000000")
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'relay-changes'"
    )
    # While the listener reconnects, answers come from the database; once it is back,
    # it bumps every generation, so nothing cached before the loss is served after
    # (this change is made without a NOTIFY, so only that rule can reveal it).
    conn.execute("DELETE FROM binance_ticker")
    conn.execute("DELETE FROM binance_candle")
    assert eventually(lambda: price(reader, out_headers) == 404)
    assert listener.wait_live(5)
    assert price(reader, out_headers) == 404


# -- the answer cache's bounds ----------------------------------------------------------------

RECORDS = "/relay-api/v1/relay-out/records"


@pytest.fixture
def trades(conn):
    """1000 CoinAPI trades of BTC, each record about 190 bytes of JSON."""
    conn.execute("INSERT INTO symbol (symbol_id) VALUES ('BITSTAMP_SPOT_BTC_USD')")
    conn.execute(
        "INSERT INTO symbol_data SELECT gen_random_uuid(), 1, t, t, 7000, 1, 'BUY' "
        "FROM generate_series(timestamptz '2020-01-01', timestamptz '2020-01-01 00:16:39', "
        "interval '1 s') AS t"
    )


def behind_the_relays_back(conn) -> None:
    """Change every price without a NOTIFY: only an answer read afresh shows it."""
    conn.execute("UPDATE symbol_data SET price = price + 1")


def first_price(app, headers, query) -> str:
    return app.get(RECORDS, query, headers=headers).json["data"]["records"][0]["price"]


def test_answers_are_cached_by_what_the_parameters_mean(
    make_app, config, listener, trades, conn, out_headers
):
    app = make_app(config, changes=listener)
    assert first_price(app, out_headers, "symbol=BTC&limit=10") == "7000"
    behind_the_relays_back(conn)
    # The same question, spelled otherwise: the same cached answer.
    assert first_price(app, out_headers, "limit=010&symbol=btc") == "7000"
    assert first_price(app, out_headers, "symbol=BITSTAMP_SPOT_BTC_USD&limit=10") == "7000"
    assert first_price(app, out_headers, "symbol=BTC&limit=11") == "7001"  # another question


def test_the_answer_cache_keeps_to_its_byte_budget_and_still_serves_hits(
    make_app, config, listener, trades, conn, out_headers
):
    app = make_app(config.replace(answer_cache_mb=1), changes=listener)
    cache = app.app.answer_cache
    assert cache.max_bytes == 1 << 20
    for n in range(50):  # unknown parameters are refused before anything is computed
        app.get(RECORDS, {"symbol": "BTC", "junk": n}, headers=out_headers, status=400)
    assert cache.bytes == 0 and len(cache) == 0

    sizes = []
    for limit in range(100, 400):  # about 14 MB of answers, 19 to 76 KB each
        sizes.append(
            len(app.get(RECORDS, {"symbol": "BTC", "limit": limit}, headers=out_headers).body)
        )
    assert sum(sizes) > 10 * cache.max_bytes
    assert 0.5 * cache.max_bytes < cache.bytes <= cache.max_bytes
    assert 10 < len(cache) < 300  # the least recently used went first
    assert cache.bytes >= sum(sizes[-len(cache) :])  # the newest are kept, measured in full

    behind_the_relays_back(conn)
    assert first_price(app, out_headers, {"symbol": "BTC", "limit": 399}) == "7000"  # a hit
    assert first_price(app, out_headers, {"symbol": "BTC", "limit": 100}) == "7001"  # evicted

    # An answer larger than an eighth of the budget is served but not kept.
    before = cache.bytes
    big = app.get(RECORDS, {"symbol": "BTC", "limit": 1000}, headers=out_headers)
    assert len(big.body) > cache.max_bytes / 8
    assert cache.bytes <= before
    behind_the_relays_back(conn)
    assert first_price(app, out_headers, {"symbol": "BTC", "limit": 1000}) == "7002"


@pytest.fixture
def proxy(database_url):
    with StallingProxy(database_url) as proxy:
        yield proxy


def backend_pids(conn) -> set[int]:
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'relay-changes'"
    ).fetchall()
    return {row[0] for row in rows}


def test_a_stalled_listener_is_not_trusted_and_is_again_once_it_is_heard(
    proxy, make_app, config, database_url
):
    # The listener goes through the proxy; the pool, as every request, goes direct.
    changes = Changes(proxy.conninfo, retry_s=0.1).start()
    try:
        assert changes.wait_live(5)
        reader = make_app(config, now=lambda: NOW, changes=changes)
        token = auth.mint_token(SECRET, "leaked", ["relay:out"], 600)
        headers = {"Authorization": f"Bearer {token}"}
        assert price(reader, headers) == 404  # accepted: no data yet
        jti = jwt.decode(token, SECRET, algorithms=["HS256"])["jti"]

        proxy.stall()
        from relay import db

        with db.make_pool(database_url, open=True) as pool:
            auth.Revocations(pool).revoke(jti)  # its NOTIFY waits in the stalled proxy
        # Within the freshness window the listener is no longer trusted: the database
        # is asked, and it says revoked. Nothing is cached meanwhile.
        started = time.monotonic()
        assert eventually(lambda: price(reader, headers) == 401, timeout=8)
        assert time.monotonic() - started < changes.fresh_s + 2 * changes.heartbeat_s
        resp = reader.get(PRICE, {"currency": "ADAUSDT"}, headers=headers, status=401)
        assert resp.json["message"] == "Unauthorized: token revoked"
        assert not changes.live and changes.generation("candles") is None
        assert changes.revoked() is None

        proxy.resume()
        # Heard from again: the notification held in the stall arrives, and the set
        # (with the revocation in it) is trusted again.
        assert eventually(lambda: changes.live, timeout=5)
        assert jti in changes.revoked()
        assert changes.generation("candles") is not None
    finally:
        proxy.resume()
        changes.stop()


def test_a_listener_whose_connection_stays_stalled_reconnects(proxy, conn, caplog):
    changes = Changes(proxy.conninfo, retry_s=0.1, dead_after_s=1.0).start()
    try:
        assert changes.wait_live(5)
        # (once listeners of earlier tests are gone)
        assert eventually(lambda: len(backend_pids(conn)) == 1)
        first = backend_pids(conn)
        proxy.stall()
        # An unanswered heartbeat past dead_after_s: the listener drops the connection.
        assert eventually(lambda: "no answer" in caplog.text, timeout=5)
        proxy.resume()
        assert eventually(lambda: changes.live, timeout=10)
        assert eventually(lambda: len(backend_pids(conn)) == 1 and backend_pids(conn) != first)
    finally:
        proxy.resume()
        changes.stop()
