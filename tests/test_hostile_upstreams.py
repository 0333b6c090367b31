"""Upstreams are other people's servers: what a broken or malicious one sends costs us nothing.

Each case is served by a real loopback server (tests/hostile.py). Each asserts
the status and the envelope, that nothing was stored, and that this process's
peak resident memory (from /proc, reset before the case) stayed within
BOUND_MIB of its idle size while the relay-in ran.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import requests

from tests import hostile as meter
from tests.conftest import SECRET, bearer, fresh_database
from tests.hostile import (
    MIB,
    HostileServer,
    bzip2_zip,
    drip,
    gzip_bomb,
    gzipped,
    huge,
    redirect,
    send,
    wide_csv_zip,
)
from tests.served import gunicorn
from tests.test_hardening import stored_rows
from tests.upstreams import FakeCMC, cmc_json, cmc_listing, ecb_xml, png

NOW = datetime(2022, 1, 1, 12, tzinfo=UTC)
BOUND_MIB = 150
COINAPI_PAGE = "/v1/trades/BITSTAMP_SPOT_BTC_USD/history"
KLINES = "/api/v3/klines"
DAILY_XML = ecb_xml({"2022-01-03": {"USD": "1.1300", "JPY": "130.54"}})


@pytest.fixture
def hostile():
    server = HostileServer()
    yield server
    server.stop()


@pytest.fixture
def other_host():
    """A second server: where redirects point, and the 'internal' address of the SSRF cases."""
    server = HostileServer()
    server.routes["/admin.png"] = lambda h: send(h, 200, png(7), "image/png")
    yield server
    server.stop()


def bounded_memory(case: str):
    return meter.bounded_memory(case, BOUND_MIB)


def coinapi_app(make_app, config, url, **changes):
    return make_app(config.replace(coinapi_url=url, **changes), now=lambda: NOW)


def relay_coinapi(app, headers, status):
    return app.post_json(
        "/relay-api/v1/relay-in/coinapi", {"symbols": ["BTC"]}, headers=headers, status=status
    )


def assert_envelope(resp, status: int, *words: str) -> None:
    body = resp.json
    assert body["code"] == status
    assert set(body) == {"code", "message", "data"}
    for word in words:
        assert word in body["message"]
    assert resp.headers["X-Request-Id"]


# -- size ------------------------------------------------------------------------------


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "until-close"])
def test_a_500_mb_body_is_refused_at_the_cap(make_app, config, conn, in_headers, hostile, declared):
    hostile.routes[COINAPI_PAGE] = huge(500 * MIB, declared=declared)
    app = coinapi_app(make_app, config, hostile.url)
    with bounded_memory(f"500 MB body ({'declared' if declared else 'undeclared'})"):
        resp = relay_coinapi(app, in_headers, 502)
    assert_envelope(resp, 502, "Bad Gateway: CoinAPI sent", "bytes allowed")
    assert stored_rows(conn) == 0


def test_a_gzip_bomb_is_refused_as_it_decodes(make_app, config, conn, in_headers, hostile):
    bomb = gzip_bomb()  # about 1 MiB that decodes to 1 GiB
    assert len(bomb) < 2 * MIB
    hostile.routes[COINAPI_PAGE] = gzipped(bomb)
    app = coinapi_app(make_app, config, hostile.url)
    with bounded_memory("gzip bomb, 1 GiB decoded"):
        resp = relay_coinapi(app, in_headers, 502)
    assert_envelope(resp, 502, "Bad Gateway: CoinAPI sent more than the")
    assert stored_rows(conn) == 0


def test_a_gzip_bomb_in_a_redirect_is_refused_as_it_decodes(
    make_app, config, conn, in_headers, hostile
):
    """A redirect's body is read within the same bounds as any other, never whole."""
    hostile.routes[COINAPI_PAGE] = gzipped(gzip_bomb(), location="/elsewhere")
    app = coinapi_app(make_app, config, hostile.url)
    with bounded_memory("gzip bomb in a 302, 1 GiB decoded"):
        resp = relay_coinapi(app, in_headers, 502)
    assert_envelope(resp, 502, "Bad Gateway: CoinAPI sent more than the")
    assert stored_rows(conn) == 0
    assert [path.split("?")[0] for path in hostile.paths()] == [COINAPI_PAGE]  # not followed


def test_gzip_is_still_read_when_it_fits(make_app, config, conn, in_headers, hostile):
    trades = (
        '[{"symbol_id": "BITSTAMP_SPOT_BTC_USD", "time_exchange": "2022-01-01T11:00:00.0000000Z",'
        ' "time_coinapi": "2022-01-01T11:00:00.1000000Z",'
        ' "uuid": "0a6b9c1e-1111-4a4a-9b9b-000000000001",'
        ' "price": 46150.123456789012345, "size": 0.00000001, "taker_side": "BUY"}]'
    )
    import gzip

    hostile.routes[COINAPI_PAGE] = gzipped(gzip.compress(trades.encode()))
    app = coinapi_app(make_app, config, hostile.url)
    relay_coinapi(app, in_headers, 201)
    assert conn.execute("SELECT price::text FROM symbol_data").fetchone()[0] == (
        "46150.123456789012345"
    )
    assert hostile.requests[0][1]["Accept-Encoding"] == "gzip, deflate"


# -- time ------------------------------------------------------------------------------


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers"])
def test_a_slow_drip_ends_at_the_deadline_with_504(
    make_app, config, conn, in_headers, hostile, headers_too
):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"
    hostile.routes[COINAPI_PAGE] = drip(
        head, b"[" + b" " * 398 + b"]", 0.2, headers_too=headers_too
    )
    app = coinapi_app(make_app, config, hostile.url, upstream_timeout_s=0.5)
    started = time.monotonic()
    with bounded_memory(f"slow drip ({'headers' if headers_too else 'body'})"):
        resp = relay_coinapi(app, in_headers, 504)
    elapsed = time.monotonic() - started
    assert_envelope(resp, 504, "Gateway Timeout: CoinAPI did not answer within 0.5 s")
    # Three attempts of at most 0.5 s each, not 400 bytes x 0.2 s (80 s) each.
    assert elapsed < 3 * 0.5 + 2
    assert len(hostile.requests) == 3
    assert stored_rows(conn) == 0


def test_a_slow_logo_costs_its_deadline_not_the_run(make_app, config, conn, in_headers, hostile):
    cmc = FakeCMC()
    try:
        cmc.listings = [cmc_listing(1, "Bitcoin", "BTC", 1, "9000.5")]
        head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 200\r\n\r\n"
        hostile.routes["/slow.png"] = drip(head, png(1) + b"\0" * 160, 0.2)
        cmc.logos = {1: f"{hostile.url}/slow.png"}
        app = make_app(
            config.replace(
                cmc_url=cmc.url,
                cmc_api_key=cmc.key,
                cmc_logo_hosts=(f"127.0.0.1:{hostile.port}",),
                upstream_timeout_s=0.5,
            ),
            now=lambda: NOW,
        )
        started = time.monotonic()
        resp = app.post("/relay-api/v1/relay-in/cmc", headers=in_headers, status=201)
        assert time.monotonic() - started < 3 * 0.5 + 2
        assert resp.json["data"]["logos"] == {"stored": 0, "failed": 1, "complete": False}
        assert conn.execute("SELECT count(*) FROM coin").fetchone()[0] == 1
    finally:
        cmc.stop()


# -- the ECB's zip ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("csv_mib", "words"),
    [(60, "the CSV inside is larger than"), (30, "line 1 is longer than")],
    ids=["60-MiB-csv", "30-MiB-line"],
)
def test_a_small_zip_with_a_wide_csv_is_refused(
    make_app, config, conn, in_headers, hostile, csv_mib, words
):
    archive = wide_csv_zip(csv_mib * MIB)
    assert len(archive) < 1 * MIB  # small on the wire
    hostile.routes["/eurofxref-daily.xml"] = lambda h: send(h, 200, DAILY_XML, "text/xml")
    hostile.routes["/eurofxref-hist.zip"] = lambda h: send(h, 200, archive, "application/zip")
    app = make_app(config.replace(ecb_url=hostile.url), now=lambda: NOW)
    with bounded_memory(f"{len(archive) // 1024} KB zip, {csv_mib} MiB CSV"):
        resp = app.post("/relay-api/v1/relay-in/ecb", headers=in_headers, status=502)
    assert_envelope(resp, 502, "Bad Gateway: ECB eurofxref-hist.zip is malformed", words)
    assert stored_rows(conn) == 0


def test_a_zip_compressed_other_than_by_deflate_is_refused_unread(
    make_app, config, conn, in_headers, hostile
):
    """zipfile stops deflate at the declared size, but not bzip2 or LZMA: a 256 MiB CSV
    declared as 100 bytes would be decoded whole. The ECB's zip is deflated."""
    archive = bzip2_zip(256 * MIB)
    assert len(archive) < 1024
    hostile.routes["/eurofxref-daily.xml"] = lambda h: send(h, 200, DAILY_XML, "text/xml")
    hostile.routes["/eurofxref-hist.zip"] = lambda h: send(h, 200, archive, "application/zip")
    app = make_app(config.replace(ecb_url=hostile.url), now=lambda: NOW)
    with bounded_memory(f"{len(archive)} B zip, bzip2 of 256 MiB declared as 100 B"):
        resp = app.post("/relay-api/v1/relay-in/ecb", headers=in_headers, status=502)
    assert_envelope(resp, 502, "Bad Gateway: ECB eurofxref-hist.zip is malformed", "not by deflate")
    assert stored_rows(conn) == 0


# -- trust -----------------------------------------------------------------------------


def test_the_coinapi_key_never_follows_a_redirect_to_another_host(
    make_app, config, conn, in_headers, hostile, other_host
):
    other_host.routes[COINAPI_PAGE] = lambda h: send(h, 200, b"[]")
    hostile.routes[COINAPI_PAGE] = redirect(f"{other_host.url}{COINAPI_PAGE}")
    app = coinapi_app(make_app, config, hostile.url)
    resp = relay_coinapi(app, in_headers, 502)
    assert_envelope(resp, 502, "Bad Gateway: CoinAPI redirected to another host (127.0.0.1)")
    assert other_host.requests == []
    assert hostile.requests[0][1]["X-CoinAPI-Key"] == "test-coinapi-key"


def test_the_cmc_key_never_follows_a_redirect_to_another_host(
    make_app, config, in_headers, hostile, other_host
):
    hostile.routes["/v1/cryptocurrency/listings/latest"] = redirect(f"{other_host.url}/steal")
    app = make_app(config.replace(cmc_url=hostile.url, cmc_api_key="cmc-key"), now=lambda: NOW)
    resp = app.post("/relay-api/v1/relay-in/cmc", headers=in_headers, status=502)
    assert_envelope(resp, 502, "Bad Gateway: CoinMarketCap redirected to another host")
    assert other_host.requests == []


def test_a_redirect_within_the_same_host_is_followed(make_app, config, conn, in_headers, hostile):
    hostile.routes[COINAPI_PAGE] = redirect("/moved")
    hostile.routes["/moved"] = lambda h: send(h, 200, b"[]")
    app = coinapi_app(make_app, config, hostile.url)
    relay_coinapi(app, in_headers, 204)
    assert [path.split("?")[0] for path in hostile.paths()] == [COINAPI_PAGE, "/moved"]
    assert hostile.requests[1][1]["X-CoinAPI-Key"] == "test-coinapi-key"


def test_logos_come_only_from_listed_hosts_and_only_as_images(
    make_app, config, conn, in_headers, hostile, other_host
):
    """SSRF: a listing can name any URL; only listed hosts are asked, only images kept."""
    named = HostileServer()  # listed by a name that resolves to loopback, not by address
    cmc = FakeCMC()
    try:
        named.routes["/n.png"] = lambda h: send(h, 200, png(3), "image/png")
        hostile.routes["/to-internal.png"] = redirect(f"{other_host.url}/admin.png")
        hostile.routes["/logo.svg"] = lambda h: send(
            h, 200, b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "image/svg+xml",
        )  # fmt: skip
        hostile.routes["/ok"] = lambda h: send(h, 200, png(5), "text/plain")
        cmc.listings = [cmc_listing(i, f"Coin {i}", f"C{i}", i, "1") for i in range(1, 6)]
        cmc.logos = {
            1: f"{other_host.url}/admin.png",  # not listed at all
            2: f"{hostile.url}/to-internal.png",  # listed, but redirects off the list
            3: f"{hostile.url}/logo.svg",  # scriptable
            4: f"http://localhost:{named.port}/n.png",  # a listed name, a loopback address
            5: f"{hostile.url}/ok",  # a PNG, whatever its Content-Type says
        }
        listed = (f"127.0.0.1:{hostile.port}", f"localhost:{named.port}")
        app = make_app(
            config.replace(cmc_url=cmc.url, cmc_api_key=cmc.key, cmc_logo_hosts=listed),
            now=lambda: NOW,
        )
        resp = app.post("/relay-api/v1/relay-in/cmc", headers=in_headers, status=201)
        assert resp.json["data"]["logos"] == {"stored": 1, "failed": 4, "complete": False}
        assert other_host.requests == []
        assert named.requests == []
        rows = conn.execute(
            "SELECT c.cmc_id, l.content_type FROM coin c JOIN logo l ON l.id = c.logo_id"
        ).fetchall()
        assert rows == [(5, "image/png")]
    finally:
        cmc.stop()
        named.stop()


def test_a_backslash_in_a_redirect_cannot_take_the_key_to_another_port(
    make_app, config, conn, in_headers, hostile, other_host
):
    """urlsplit reads the host after a backslash, urllib3 before it: never trust one parser."""
    other_host.routes["/"] = lambda h: send(h, 200, b"[]")
    smuggled = f"http://127.0.0.1:{other_host.port}\\@127.0.0.1:{hostile.port}/x"
    hostile.routes[COINAPI_PAGE] = redirect(smuggled)
    app = coinapi_app(make_app, config, hostile.url)
    resp = relay_coinapi(app, in_headers, 502)
    assert_envelope(resp, 502, "Bad Gateway: CoinAPI", "not followed")
    assert other_host.requests == []
    assert stored_rows(conn) == 0


@pytest.mark.parametrize(
    "location", ["http://[::1/x", "http://127.0.0.1:99999/x", "http://\u00e9xample/x", "\x01/x"]
)
def test_a_redirect_to_a_broken_url_is_502_not_500(
    make_app, config, conn, in_headers, hostile, location
):
    hostile.routes[COINAPI_PAGE] = lambda h: send(
        h, 302, b"", headers={"Location": location.encode("utf-8").decode("latin-1")}
    )
    app = coinapi_app(make_app, config, hostile.url)
    resp = relay_coinapi(app, in_headers, 502)
    assert_envelope(resp, 502, "Bad Gateway: CoinAPI")
    assert stored_rows(conn) == 0


def test_logo_urls_that_parse_two_ways_or_not_at_all_are_not_fetched(
    make_app, config, conn, in_headers, hostile, other_host
):
    """SSRF by parser differential, and URLs that make a parser raise: failed, never a 500."""
    cmc = FakeCMC()
    try:
        hostile.routes["/x.png"] = lambda h: send(h, 200, png(1), "image/png")
        cmc.listings = [cmc_listing(i, f"Coin {i}", f"C{i}", i, "1") for i in range(1, 5)]
        cmc.logos = {
            1: f"http://127.0.0.1:{other_host.port}\\@127.0.0.1:{hostile.port}/x.png",
            2: "http://[::1/x.png",
            3: f"http://127.0.0.1:{hostile.port}/\ud800.png",
            4: f"http://127.0.0.1:{hostile.port}/x.png",
        }
        listed = (f"127.0.0.1:{hostile.port}",)
        app = make_app(
            config.replace(cmc_url=cmc.url, cmc_api_key=cmc.key, cmc_logo_hosts=listed),
            now=lambda: NOW,
        )
        resp = app.post("/relay-api/v1/relay-in/cmc", headers=in_headers, status=201)
        # The surrogate URL is dropped as unusable before any fetch; the other two fail.
        assert resp.json["data"]["logos"] == {"stored": 1, "failed": 2, "complete": False}
        assert other_host.requests == []
        assert hostile.paths() == ["/x.png"]
    finally:
        cmc.stop()


def test_the_info_batches_stop_at_the_run_budget(make_app, config, conn, in_headers, hostile):
    """Every upstream request ends by the run's deadline, however many are left to make."""
    listings = [cmc_listing(i, f"Coin {i}", f"C{i}", i, "1") for i in range(1, 301)]
    body = '{"status": {"error_code": 0}, "data": [' + ",".join(map(cmc_json, listings))
    hostile.routes["/v1/cryptocurrency/listings/latest"] = lambda h: send(
        h, 200, (body + "]}").encode()
    )
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"
    hostile.routes["/v2/cryptocurrency/info"] = drip(head, b" " * 400, 0.1)
    app = make_app(
        config.replace(
            cmc_url=hostile.url,
            cmc_api_key="k",
            cmc_limit=300,
            relay_in_budget_s=1.5,
            upstream_timeout_s=5,
        ),
        now=lambda: NOW,
    )
    started = time.monotonic()
    resp = app.post("/relay-api/v1/relay-in/cmc", headers=in_headers, status=201)
    elapsed = time.monotonic() - started
    # Before: each info batch took its own 5 s timeout, three attempts each (45 s).
    assert elapsed < 1.5 + 1.5, f"took {elapsed:.1f} s on a 1.5 s budget"
    assert resp.json["data"]["logos"]["complete"] is False
    assert conn.execute("SELECT count(*) FROM coin").fetchone()[0] == 300


def test_a_gzip_bomb_logo_is_refused(make_app, config, conn, in_headers, hostile):
    cmc = FakeCMC()
    try:
        bomb = gzip_bomb(4096 * MIB)  # 4 GiB of zeros in about 4 MiB
        hostile.routes["/bomb.png"] = gzipped(bomb, "image/png")
        cmc.listings = [cmc_listing(1, "Bitcoin", "BTC", 1, "9000.5")]
        cmc.logos = {1: f"{hostile.url}/bomb.png"}
        app = make_app(
            config.replace(
                cmc_url=cmc.url, cmc_api_key=cmc.key, cmc_logo_hosts=(f"127.0.0.1:{hostile.port}",)
            ),
            now=lambda: NOW,
        )
        with bounded_memory("gzip bomb logo, 4 GiB decoded"):
            resp = app.post("/relay-api/v1/relay-in/cmc", headers=in_headers, status=201)
        assert resp.json["data"]["logos"] == {"stored": 0, "failed": 1, "complete": False}
        assert conn.execute("SELECT count(*) FROM logo").fetchone()[0] == 0
    finally:
        cmc.stop()


# -- values ----------------------------------------------------------------------------

TRADE = (
    '{{"symbol_id": "BITSTAMP_SPOT_BTC_USD", "time_exchange": "{time}",'
    ' "time_coinapi": "2022-01-01T11:00:00.1000000Z",'
    ' "uuid": "0a6b9c1e-1111-4a4a-9b9b-000000000001",'
    ' "price": {price}, "size": 1, "taker_side": "{side}"}}'
)


def trade(time="2022-01-01T11:00:00.0000000Z", price="46150.1", side="BUY") -> bytes:
    return ("[" + TRADE.format(time=time, price=price, side=side) + "]").encode()


def kline(open_time="1640995200000", close="1.5") -> bytes:
    return (
        f'[[{open_time}, "1.0", "2.0", "0.5", "{close}", "10", 1640995259999, "15", 3, "5",'
        ' "7.5", "0"]]'
    ).encode()


@pytest.mark.parametrize(
    ("source", "path", "body", "words"),
    [
        ("coinapi", COINAPI_PAGE, trade(price="1e999999"), "'price' is out of range"),
        ("coinapi", COINAPI_PAGE, trade(side="BU\\u0000Y"), "contains a NUL"),
        ("coinapi", COINAPI_PAGE, trade(time="9999-12-31T23:59:59Z"), "outside 1970..2200"),
        ("coinapi", COINAPI_PAGE, b"[" * 10_000 + b"]" * 10_000, "nested too deeply"),
        ("binance", KLINES, kline(open_time="100000000000000000000"), "kline #0 is malformed"),
        ("binance", KLINES, kline(close="1e999999"), "close is out of range"),
        ("binance", KLINES, kline(close="NaN"), "close is not finite"),
        ("cmc", "/v1/cryptocurrency/listings/latest", None, "name contains a NUL"),
        ("cmc", "/v1/cryptocurrency/listings/latest", "\ud800", "slug is not valid Unicode"),
        ("ecb", "/eurofxref-daily.xml", None, "rate '1e999999' is out of range"),
    ],
    ids=[
        "coinapi-1e999999", "coinapi-NUL", "coinapi-year-9999", "coinapi-deep-nesting",
        "binance-time-overflow", "binance-1e999999", "binance-NaN", "cmc-NUL",
        "cmc-lone-surrogate", "ecb-1e999999",
    ],
)  # fmt: skip
def test_values_the_database_cannot_hold_are_502_naming_upstream_and_field(
    make_app, config, conn, in_headers, hostile, source, path, body, words
):
    if source == "cmc":
        listing = cmc_listing(1, "Bit\x00coin", "BTC", 1, "1")
        if body:  # JSON's escape for a lone surrogate, which UTF-8 cannot carry
            listing = cmc_listing(1, "Bitcoin", "BTC", 1, "1") | {"slug": "SLUG"}
        text = cmc_json(listing).replace('"SLUG"', '"bit\\ud800coin"')
        body = ('{"status": {"error_code": 0}, "data": [' + text + "]}").encode()
    if source == "ecb":
        body = ecb_xml({"2022-01-03": {"USD": "1e999999"}})
    hostile.routes[path] = lambda h: send(h, 200, body)
    field = {"coinapi": "coinapi_url", "binance": "binance_url", "cmc": "cmc_url"}.get(
        source, "ecb_url"
    )
    app = make_app(config.replace(**{field: hostile.url}, cmc_api_key="k"), now=lambda: NOW)
    symbols = {"coinapi": ["BTC"], "binance": ["BTCUSDT"]}.get(source)
    with bounded_memory(f"{source} value: {words}"):
        if symbols:
            resp = app.post_json(
                f"/relay-api/v1/relay-in/{source}",
                {"symbols": symbols},
                headers=in_headers,
                status=502,
            )
        else:
            resp = app.post(f"/relay-api/v1/relay-in/{source}", headers=in_headers, status=502)
    name = {"coinapi": "CoinAPI", "binance": "Binance", "cmc": "CoinMarketCap", "ecb": "ECB"}
    assert_envelope(resp, 502, f"Bad Gateway: {name[source]}", words)
    assert stored_rows(conn) == 0


# -- the same, as production serves it -------------------------------------------------


def test_through_gunicorn_a_dripping_upstream_is_a_504_envelope_and_the_worker_lives(
    server_url, hostile, tmp_path
):
    """The original finding: gunicorn killed the worker and sent its own HTML 500."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"
    hostile.routes[COINAPI_PAGE] = drip(head, b"[" + b" " * 398 + b"]", 0.5)
    with fresh_database(server_url, prefix="relay_served") as url:
        env = {
            "DATABASE_URL": url,
            "RELAY_JWT_SECRET": SECRET,
            "COINAPI_URL": hostile.url,
            "RELAY_UPSTREAM_TIMEOUT": "1",
        }
        with gunicorn(env, tmp_path / "gunicorn.log") as server:
            started = time.monotonic()
            resp = requests.post(
                f"{server.url}/relay-api/v1/relay-in/coinapi",
                json={"symbols": ["BTC"]},
                headers=bearer("relay:in"),
                timeout=60,
            )
            assert time.monotonic() - started < 3 * 1 + 3  # three attempts of 1 s, and backoff
            assert resp.status_code == 504
            assert resp.json()["message"] == "Gateway Timeout: CoinAPI did not answer within 1 s"
            assert resp.headers["X-Request-Id"]
            assert requests.get(f"{server.url}/health", timeout=5).status_code == 200
            assert "WORKER TIMEOUT" not in server.log_text()
