"""The served process: slow clients, gunicorn's limits against ours, chunked bodies, binding.

These run the real gunicorn with gunicorn.conf.py (tests/served.py), on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from relay import serving
from tests.conftest import SECRET, bearer, fresh_database
from tests.served import gunicorn, listening_addresses
from tests.upstreams import FakeCoinAPI, make_trades

IN = "/relay-api/v1/relay-in"


@pytest.fixture(scope="module")
def served(server_url, make_httpserver, tmp_path_factory):
    """gunicorn serving a database of its own, with CoinAPI at the loopback fake."""
    with fresh_database(server_url, prefix="relay_served") as url:
        env = {
            "DATABASE_URL": url,
            "RELAY_JWT_SECRET": SECRET,
            "COINAPI_URL": make_httpserver.url_for("/").rstrip("/"),
            "COINAPI_KEY": "test-coinapi-key",
            "COINAPI_BACKFILL_HOURS": "1",
        }
        with gunicorn(env, tmp_path_factory.mktemp("served") / "gunicorn.log") as server:
            yield server


class SlowClients:
    """Sockets that send a request head one byte every ``interval`` seconds, or nothing.

    Bounded: ``count + silent`` sockets, and a thread that stops after ``max_s`` seconds.
    Records when the server closed each socket.
    """

    def __init__(self, port: int, count: int, *, silent: int = 0, interval: float = 0.5,
                 max_s: float = 30.0):  # fmt: skip
        self.head = b"GET /health HTTP/1.1\r\nHost: slow\r\nX-Slow: " + b"z" * 500
        self.interval, self.max_s = interval, max_s
        self.socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
        self.silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(silent)]
        self.opened = time.monotonic()
        self.closed_at: dict[socket.socket, float] = {}
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, daemon=True)

    def __enter__(self) -> SlowClients:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.socks + self.silent:
            sock.close()

    def _drip(self) -> None:
        selector = selectors.DefaultSelector()
        for sock in self.socks + self.silent:
            selector.register(sock, selectors.EVENT_READ)
        position = 0
        while not self._stop.is_set() and time.monotonic() - self.opened < self.max_s:
            if position < len(self.head):
                for sock in self.socks:
                    if sock not in self.closed_at:
                        with contextlib.suppress(OSError):
                            sock.send(self.head[position : position + 1])
                position += 1
                self.sent = position
            deadline = time.monotonic() + self.interval
            while (left := deadline - time.monotonic()) > 0:
                for key, _ in selector.select(left):
                    # Readable: the server closed it (or answered, which it must not).
                    try:
                        data = key.fileobj.recv(4096)
                    except OSError:
                        data = b""
                    assert data == b"", f"a partial head was answered: {data[:60]!r}"
                    self.closed_at[key.fileobj] = time.monotonic()
                    selector.unregister(key.fileobj)
            if len(self.closed_at) == len(self.socks) + len(self.silent):
                return

    def all_closed(self) -> bool:
        return len(self.closed_at) == len(self.socks) + len(self.silent)


def test_slow_clients_neither_starve_health_nor_stay_connected(served):
    with SlowClients(served.port, 50, silent=20) as slow:
        time.sleep(1.5)  # every slow socket has sent part of its head by now
        assert slow.sent >= 3 and not slow.closed_at
        latencies = []
        for _ in range(5):
            started = time.monotonic()
            resp = requests.get(f"{served.url}/health", timeout=3)
            latencies.append(time.monotonic() - started)
            assert resp.status_code == 200
            time.sleep(0.2)
        assert max(latencies) < 1.0, latencies

        # The server hangs up on a head that takes longer than the read timeout.
        deadline = slow.opened + serving.READ_TIMEOUT_S + 3
        while not slow.all_closed() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert slow.all_closed(), f"{len(slow.closed_at)} of 70 closed"
        waited = [at - slow.opened for at in slow.closed_at.values()]
        assert min(waited) >= serving.READ_TIMEOUT_S - 0.5
        assert max(waited) <= serving.READ_TIMEOUT_S + 2.5
    # and keeps serving
    assert requests.get(f"{served.url}/health", timeout=3).status_code == 200


def test_clients_that_never_close_after_their_answer_cost_nothing(served):
    # Each asks to close, then neither reads its answer nor closes. gthread's own close
    # waits up to 2 s for each such client on the worker's main loop, accepting nothing.
    hold = b"GET /health HTTP/1.1\r\nHost: hold\r\nConnection: close\r\n\r\n"
    socks = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(20)]
    try:
        for sock in socks:
            sock.sendall(hold)
        time.sleep(0.3)
        latencies = []
        for _ in range(5):
            started = time.monotonic()
            assert requests.get(f"{served.url}/health", timeout=10).status_code == 200
            latencies.append(time.monotonic() - started)
        assert max(latencies) < 1.0, latencies
    finally:
        for sock in socks:
            sock.close()


def test_idle_connections_give_way_to_new_ones_at_the_connection_limit(
    server_url, tmp_path_factory
):
    # One worker taking 12 connections: 7 kept alive after a request, 5 silent.
    env = {"DATABASE_URL": "", "RELAY_JWT_SECRET": SECRET, "WEB_CONCURRENCY": "1",
           "GUNICORN_CMD_ARGS": "--worker-connections 12"}  # fmt: skip
    hello = b"GET /health HTTP/1.1\r\nHost: idle\r\n\r\n"
    with (
        fresh_database(server_url, prefix="relay_served") as url,
        gunicorn({**env, "DATABASE_URL": url}, tmp_path_factory.mktemp("idle") / "log") as srv,
    ):
        idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(7)]
        for sock in idle:
            sock.sendall(hello)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        silent = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(5)]
        try:
            time.sleep(0.5)
            started = time.monotonic()
            assert requests.get(f"{srv.url}/health", timeout=10).status_code == 200
            assert time.monotonic() - started < 1.0
        finally:
            for sock in idle + silent:
                sock.close()


def exchange(port: int, data: list[bytes], *, pause: float = 0.3, expect: int = 1) -> bytes:
    """Send ``data`` in pieces, ``pause`` apart; return what came back (``expect`` answers)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for i, piece in enumerate(data):
            if i:
                time.sleep(pause)
            sock.sendall(piece)
        answer = b""
        while answer.count(b"HTTP/1.1 2") + answer.count(b"HTTP/1.1 4") < expect:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def test_requests_in_pieces_pipelined_or_expecting_100_are_served_whole(served, httpserver):
    FakeCoinAPI(httpserver).add("BITSTAMP_SPOT_ETH_USD", [])
    token = bearer("relay:in")["Authorization"].encode()
    body = b'{"symbols": ["ETH"]}'
    head = (
        b"POST /relay-api/v1/relay-in/coinapi HTTP/1.1\r\nHost: t\r\nAuthorization: "
        + token
        + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    )
    # The head and the body in pieces: served once all of it is in, with all of the body.
    answer = exchange(served.port, [head[:30], head[30:] + b"\r\n", body[:5], body[5:]])
    assert answer.startswith(b"HTTP/1.1 204"), answer[:200]
    # Expect: 100-continue: the client sends its body only after the interim answer.
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(head + b"Expect: 100-continue\r\n\r\n")
        assert sock.recv(25).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        assert b"HTTP/1.1 204" in sock.recv(65536)
    # Two requests in one write, then a third on the same connection: three answers.
    health = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
    answer = exchange(served.port, [health * 2, health], expect=3)
    assert answer.count(b"HTTP/1.1 200 OK") == 3


def test_a_head_too_large_is_431_and_a_malformed_one_is_refused_at_once(served):
    big = b"GET /health HTTP/1.1\r\nHost: t\r\n" + b"X-Big: " + b"b" * 40000 + b"\r\n\r\n"
    answer = exchange(served.port, [big])
    assert answer.startswith(b"HTTP/1.1 431")
    assert b'"code": 431' in answer
    started = time.monotonic()
    answer = exchange(served.port, [b"GET /health HTTP/1.1\nHost: t\n"])  # bare LF
    assert answer.startswith(b"HTTP/1.1 400") and time.monotonic() - started < 2


def test_a_body_declared_or_framed_over_the_limit_is_413_before_it_is_sent(served):
    """No thread waits for a body it would refuse: the 413 comes while the client still
    has all of it to send, and the client hanging up after costs no error."""
    token = bearer("relay:in")["Authorization"].encode()
    head = b"POST /relay-api/v1/relay-in/coinapi HTTP/1.1\r\nHost: t\r\nAuthorization: " + token
    for framing in (
        b"\r\nContent-Length: 1000000000\r\n\r\n{",
        b"\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\n{",
    ):
        with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
            sock.sendall(head + framing)
            answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
        assert b"X-Request-Id: " in answer
        body = answer.split(b"\r\n\r\n", 1)[1]
        assert json.loads(body) == {
            "code": 413, "message": "Content Too Large: the body exceeds 65536 bytes", "data": {},
        }  # fmt: skip
    health = requests.get(f"{served.url}/health", timeout=5)
    assert health.status_code == 200
    assert "NoMoreData" not in served.log_text() and "Traceback" not in served.log_text()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
        (b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431),
        (b"GET /health HTTP/1.1\r\n" + b"X-Many: m\r\n" * 120 + b"\r\n", 431),
        (b"G(T /health HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        (b"GET /health HTTP/3.0\r\nHost: t\r\n\r\n", 400),
    ],
    ids=["long-request-line", "long-field", "many-fields", "bad-method", "bad-version"],
)
def test_what_gunicorn_refuses_is_refused_in_our_envelope(served, request_bytes, status):
    answer = exchange(served.port, [request_bytes])
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d" % status), head[:80]
    assert b"content-type: application/json" in head.lower()
    assert b"x-request-id: " in head.lower()
    envelope = json.loads(body)
    assert envelope["code"] == status and envelope["data"] == {} and envelope["message"]


def test_it_listens_on_loopback_only_when_told(served):
    assert listening_addresses(served.port) == {"127.0.0.1"}


def test_a_query_just_over_our_limit_gets_our_414_not_gunicorns(served):
    path = "/relay-api/v1/relay-out/records"
    at_limit = "symbol=" + "A" * (4096 - len("symbol="))
    resp = requests.get(f"{served.url}{path}?{at_limit}", headers=bearer("relay:out"), timeout=5)
    # At the limit the query reaches the resource, which finds the symbol malformed.
    assert resp.status_code == 400 and resp.json()["message"] != "URI Too Long"
    assert "symbol" in resp.json()["message"]

    resp = requests.get(f"{served.url}{path}?{at_limit}B", headers=bearer("relay:out"), timeout=5)
    assert resp.status_code == 414
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.headers["X-Request-Id"]
    body = resp.json()
    assert body["code"] == 414 and "4096" in body["message"] and body["data"] == {}


def chunks(*parts: bytes):
    """A body of unknown length: requests sends it with Transfer-Encoding: chunked."""
    yield from parts


def test_a_chunked_body_is_read(served, httpserver):
    now = datetime.now(UTC)
    coinapi = FakeCoinAPI(httpserver)
    coinapi.add("BITSTAMP_SPOT_ETH_USD", make_trades(now - timedelta(minutes=30), 3))
    coinapi.add("BITSTAMP_SPOT_BTC_USD", make_trades(now - timedelta(minutes=30), 2))

    resp = requests.post(
        f"{served.url}{IN}/coinapi",
        data=chunks(b'{"symbols": ', b'["ETH"]}'),
        headers={**bearer("relay:in"), "Content-Type": "application/json"},
        timeout=10,
    )

    assert resp.status_code == 201, resp.text
    assert list(resp.json()["data"]["symbols"]) == ["BITSTAMP_SPOT_ETH_USD"]
    assert {r["symbol_id"] for r in coinapi.requests} == {"BITSTAMP_SPOT_ETH_USD"}


def test_an_oversized_chunked_body_is_413(served, httpserver):
    coinapi = FakeCoinAPI(httpserver)
    pad = b"x" * 16384
    resp = requests.post(
        f"{served.url}{IN}/coinapi",
        data=chunks(b'{"symbols": ["ETH"], "pad": "', *[pad] * 5, b'"}'),
        headers={**bearer("relay:in"), "Content-Type": "application/json"},
        timeout=10,
    )
    assert resp.status_code == 413
    assert resp.json()["code"] == 413 and "65536" in resp.json()["message"]
    assert coinapi.requests == []


GET = b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n"
POST = b"POST /x HTTP/1.1\r\nHost: t\r\n"
PADDED_CHUNK = b"1;" + b"e" * 900 + b"\r\na\r\n"  # one byte of body, 907 of framing
_CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"
_FULL = serving.MAX_HEAD_BYTES + 2 * 1024
EXACTLY_FULL = (
    _CHUNKED
    + PADDED_CHUNK * ((_FULL - len(_CHUNKED)) // len(PADDED_CHUNK))
    + b"1;" + b"e" * ((_FULL - len(_CHUNKED)) % len(PADDED_CHUNK) - 2)
)  # fmt: skip


@pytest.mark.parametrize(
    ("data", "verdict"),
    [
        (b"", "WAIT"),
        (GET[:20], "WAIT"),
        (GET, "READY"),
        (b"\r\n" + GET, "READY"),
        (GET + GET[:10], "READY"),  # the next pipelined request is its own business
        (POST + b"Content-Length: 5\r\n\r\nabc", "WAIT"),
        (POST + b"Content-Length: 5\r\n\r\nabcde", "READY"),
        (POST + b"Content-Length: 2000\r\n\r\n", "BODY_TOO_LARGE"),  # refused unread
        (POST + b"Content-Length: 2000\r\nExpect: 100-continue\r\n\r\n", "BODY_TOO_LARGE"),
        (POST + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n", "CONTINUE"),
        (POST + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\n", "READY"),  # gunicorn: 400
        (POST + b"Content-Length: x\r\n\r\n", "READY"),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", "WAIT"),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "READY"),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n", "WAIT"),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n", "READY"),
        (POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", "READY"),  # gunicorn: 400
        (POST + b"Transfer-Encoding: chunked\r\n\r\n" + b"400\r\n" + b"a" * 1024, "WAIT"),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n" + b"401\r\n", "BODY_TOO_LARGE"),
        (
            POST + b"Transfer-Encoding: chunked\r\n\r\n" + b"3\r\nabc\r\nffffff\r\n",
            "BODY_TOO_LARGE",
        ),
        (POST + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", "READY"),
        (POST + b"Transfer-Encoding: gzip\r\n\r\n", "READY"),  # gunicorn: 501
        (b"GET /health HTTP/1.1\nHost: t\n", "READY"),  # bare LF: gunicorn 400
        (b"GET /" + b"a" * serving.MAX_HEAD_BYTES, "HEAD_TOO_LARGE"),
        (POST + b"X: " + b"a" * serving.MAX_HEAD_BYTES + b"\r\n\r\n", "HEAD_TOO_LARGE"),
        # framing beyond twice the limit, for a body under it, is refused
        (POST + b"Transfer-Encoding: chunked\r\n\r\n" + b"1\r\na\r\n" * 700 + b"2\r\n", "WAIT"),
        (
            POST + b"Transfer-Encoding: chunked\r\n\r\n" + PADDED_CHUNK * 40 + b"2\r\n",
            "FRAMING_TOO_LARGE",
        ),
        (POST + b"Transfer-Encoding: chunked\r\n\r\n" + PADDED_CHUNK * 40, "FRAMING_TOO_LARGE"),
        # exactly as much as the worker buffers, and still no whole request: refused, not
        # waited on (the worker reads no more, so waiting would spin until the deadline)
        (EXACTLY_FULL, "FRAMING_TOO_LARGE"),
    ],
)
def test_judge_serves_a_request_only_once_all_of_it_is_in(data, verdict):
    limit = 1024
    if verdict == "FRAMING_TOO_LARGE":
        assert len(data) >= serving.MAX_HEAD_BYTES + 2 * limit
    assert serving.judge(data, limit) is serving.Verdict[verdict]


def test_without_expect_drops_only_the_expect_field():
    head = POST + b"EXPECT : 100-continue\r\nContent-Length: 2\r\n\r\nab"
    assert serving.without_expect(head) == POST + b"Content-Length: 2\r\n\r\nab"
