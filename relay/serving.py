"""gunicorn's gthread worker, with no thread given to a client that is still sending.

gthread hands a connection to a thread once a byte of a request is there, and the thread
then blocks until the head (and, in the app, the body) has arrived: fifty clients sending
a byte a second occupy every thread of every worker, and the service stops answering.
Worse, a new connection holds a thread for up to 5 s while gthread waits for its first byte
(``ThreadWorker.handle`` -> ``TConn.wait_for_data``), and its graceful close lingers up to
2 s for the client, on the worker's main loop (``finish_request`` -> ``close_graceful``).

:class:`RelayWorker` changes four things, and keeps the rest of gthread:

- ``handle`` reads what a connection has without waiting (``MSG_DONTWAIT``) and keeps it,
  handing the connection back to gthread's poller (the ``_DEFER`` path, which holds no
  thread) until the whole request is in: the head, and a body of known length or a chunked
  body up to the body limit. Only then does a thread parse and serve it, from memory, so
  no thread ever waits on a client's bytes.
- a request gets ``READ_TIMEOUT_S`` from its first byte (a new connection: from accept) to
  arrive; then the connection is closed. A head over ``MAX_HEAD_BYTES`` is a 431, a body
  declared or framed over the body limit a 413, at once and without reading it.
- closing waits for the client in the poller instead of blocking the main loop.
- at the connection limit, the oldest idle kept-alive connection makes room for a new one.

And gunicorn's own refusals (an over-long request line, too many or too long header
fields, a malformed request) are answered in the API's JSON envelope, not HTML.

What it keeps per connection is bounded: ``MAX_HEAD_BYTES`` plus twice the body limit.
"""

from __future__ import annotations

import contextlib
import enum
import json
import selectors
import socket
import time
from functools import partial

from gunicorn import util
from gunicorn.http2 import negotiation

# _DEFER is gthread's own "give this connection back to the poller" answer from handle();
# it is private, so gunicorn is pinned (constraints.txt) and tests/test_serving.py runs
# this worker for real: a gunicorn that renames it fails there, at import.
from gunicorn.workers.gthread import _DEFER, ThreadWorker

from relay.config import server_settings
from relay.middleware import new_id

READ_TIMEOUT_S = 10.0
MAX_HEAD_BYTES = 32 * 1024
# How long a closing connection waits for the client to close its side (gunicorn's
# close_graceful waits as long), and how much it reads meanwhile.
LINGER_S = 2.0
LINGER_MAX_BYTES = 64 * 1024
_MAX_CHUNK_LINE = 1024

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def refusal(code: int, reason: str, message: str) -> bytes:
    """A whole answer in the API's envelope, closing the connection."""
    body = json.dumps({"code": code, "message": message, "data": {}}).encode()
    return (
        f"HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nX-Request-Id: {new_id()}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


def write_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's ``util.write_error`` (its HTML error page), answering in our envelope."""
    message = f"{reason}: {mesg}" if mesg else reason
    util.write_nonblock(sock, refusal(status_int, reason, message[:300]))


class Verdict(enum.Enum):
    WAIT = "wait"  # more bytes are needed
    CONTINUE = "continue"  # the head is in; the client waits for 100 Continue to send the body
    READY = "ready"  # a thread can serve it (or gunicorn refuse it) without waiting
    HEAD_TOO_LARGE = "head too large"
    BODY_TOO_LARGE = "body too large"  # declared or framed over the limit
    FRAMING_TOO_LARGE = "framing too large"  # more chunked framing than a body may have


def judge(data: bytes, body_limit: int) -> Verdict:
    """Say whether ``data``, the start of a connection's next request, can be served yet.

    Anything malformed is READY: gunicorn's parser refuses it from what is there, at
    once. A body over ``body_limit`` is refused as soon as its length or a chunk size
    says so, before its bytes arrive.
    """
    start = 2 if data.startswith(b"\r\n") else 0  # one empty line may precede a request
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        if data.count(b"\n") != data.count(b"\r\n"):
            return Verdict.READY  # a bare LF: gunicorn answers 400
        return Verdict.HEAD_TOO_LARGE if len(data) > MAX_HEAD_BYTES else Verdict.WAIT
    if end > MAX_HEAD_BYTES:
        return Verdict.HEAD_TOO_LARGE
    lines = data[start:end].split(b"\r\n")
    fields: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields.setdefault(name.strip().lower(), []).append(value.strip())
    body = end + 4
    lengths = fields.get(b"content-length", [])
    codings = fields.get(b"transfer-encoding", [])
    if codings:
        last = b",".join(codings).split(b",")[-1].strip().lower()
        if lengths or last != b"chunked":
            return Verdict.READY  # refused by gunicorn (smuggling, unknown coding)
        verdict = _chunked(data, body, body_limit)
        if verdict is Verdict.WAIT and len(data) >= MAX_HEAD_BYTES + 2 * body_limit:
            # Framing that costs more than the data it frames is not a body, it is a drip.
            return Verdict.FRAMING_TOO_LARGE
        if verdict is not Verdict.WAIT:
            return verdict
    elif lengths:
        if len(lengths) != 1 or not lengths[0].isdigit():
            return Verdict.READY
        length = int(lengths[0])
        if length > body_limit:
            return Verdict.BODY_TOO_LARGE
        if len(data) - body >= length:
            return Verdict.READY
        verdict = Verdict.WAIT
    else:
        return Verdict.READY
    expects = [v.lower() for v in fields.get(b"expect", [])]
    version = lines[0].rsplit(b" ", 1)[-1]
    if verdict is Verdict.WAIT and expects == [b"100-continue"] and version == b"HTTP/1.1":
        return Verdict.CONTINUE
    return verdict


def _chunked(data: bytes, pos: int, body_limit: int) -> Verdict:
    """Walk a chunked body from ``pos``: READY once it ended, BODY_TOO_LARGE past the limit."""
    decoded = 0
    while True:
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            return Verdict.READY if len(data) - pos > _MAX_CHUNK_LINE else Verdict.WAIT
        size_text = data[pos:line_end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            size = -1
        if size < 0:
            return Verdict.READY  # gunicorn answers 400
        pos = line_end + 2
        if size == 0:
            # Trailers, if any, end with an empty line.
            if data[pos : pos + 2] == b"\r\n" or data.find(b"\r\n\r\n", pos - 2) >= 0:
                return Verdict.READY
            return Verdict.WAIT
        decoded += size
        if decoded > body_limit:
            return Verdict.BODY_TOO_LARGE
        if len(data) < pos + size + 2:
            return Verdict.WAIT
        pos += size + 2


def without_expect(data: bytes) -> bytes:
    """The request with its Expect field removed (once we sent 100 Continue ourselves,
    gunicorn must not send another)."""
    start = 2 if data.startswith(b"\r\n") else 0
    end = data.find(b"\r\n\r\n", start)
    lines = data[start:end].split(b"\r\n")
    kept = [lines[0]] + [
        line for line in lines[1:] if line.partition(b":")[0].strip().lower() != b"expect"
    ]
    return b"\r\n".join(kept) + data[end:]


class _Pending:
    """A request being read: what arrived so far and until when the rest may take."""

    __slots__ = ("continued", "data", "deadline")

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.data = bytearray()
        self.continued = False


class RelayWorker(ThreadWorker):
    """gthread, serving a request only once all of it is in (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.body_limit = server_settings().max_body_bytes
        self.max_buffered = MAX_HEAD_BYTES + 2 * self.body_limit
        self.lingering: dict = {}  # conn -> None, oldest first (all linger equally long)
        self._next_expiry = 0.0
        self.refusals = {
            Verdict.HEAD_TOO_LARGE: (
                431,
                "Request Header Fields Too Large",
                f"Request Header Fields Too Large: the head exceeds {MAX_HEAD_BYTES} bytes",
            ),
            Verdict.BODY_TOO_LARGE: (
                413,
                "Content Too Large",
                f"Content Too Large: the body exceeds {self.body_limit} bytes",
            ),
            Verdict.FRAMING_TOO_LARGE: (
                413,
                "Content Too Large",
                f"Content Too Large: the chunked framing exceeds {2 * self.body_limit} bytes",
            ),
        }

    def init_process(self):
        # gunicorn answers what its parser refuses with util.write_error's HTML page; this
        # process serves only our API, so its refusals speak the API's envelope too.
        util.write_error = write_error
        super().init_process()

    # -- reading a request without a thread waiting for it ---------------------------------

    def handle(self, conn):
        """Serve the request if all of it is in; else hand the connection to the poller."""
        if (
            self.cfg.is_ssl
            or conn.is_http2
            or negotiation.prior_knowledge_allowed(self.cfg, conn.client)
        ):
            return super().handle(conn)
        now = time.monotonic()
        pending = getattr(conn, "relay_pending", None)
        if pending is None:
            # New: the clock starts now (at accept, or at the first byte of a kept-alive
            # connection's next request); bytes a previous request read ahead come first.
            pending = conn.relay_pending = _Pending(now + READ_TIMEOUT_S)
            if conn.initialized:
                pending.data += conn.parser.unreader.take_buffered()
        ended = self._take(conn.sock, pending.data)
        verdict = judge(bytes(pending.data), self.body_limit)
        if verdict in (Verdict.WAIT, Verdict.CONTINUE) and len(pending.data) >= self.max_buffered:
            verdict = Verdict.FRAMING_TOO_LARGE  # full, and still not a whole request
        if verdict is Verdict.READY:
            conn.relay_pending = None
            data = bytes(pending.data)
            conn.init()
            conn.parser.unreader.unread(without_expect(data) if pending.continued else data)
            conn.data_ready = True
            return super().handle(conn)
        if verdict in self.refusals:
            self._send(conn.sock, refusal(*self.refusals[verdict]))
            return False
        if ended or now >= pending.deadline:
            return False
        if verdict is Verdict.CONTINUE and not pending.continued:
            pending.continued = self._send(conn.sock, CONTINUE)
        return _DEFER

    def _take(self, sock: socket.socket, data: bytearray) -> bool:
        """Append what the socket holds, up to the bound; return True if the client is gone."""
        while len(data) < self.max_buffered:
            try:
                chunk = sock.recv(min(65536, self.max_buffered - len(data)), socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                return True
            if not chunk:
                return True
            data += chunk
        return False

    @staticmethod
    def _send(sock: socket.socket, data: bytes) -> bool:
        try:
            return sock.send(data, socket.MSG_DONTWAIT) == len(data)
        except OSError:
            return False

    # -- timeouts and closing, on the main loop ------------------------------------------------

    def finish_request(self, conn, fs):
        result = None if fs.cancelled() or fs.exception() is not None else fs.result()
        if result is False and not self.cfg.is_ssl:
            self.nr_conns -= 1
            self._linger(conn)
            return
        super().finish_request(conn, fs)
        pending = getattr(conn, "relay_pending", None)
        deferred = result is _DEFER and self.pending_conns and self.pending_conns[-1] is conn
        if deferred and pending is not None:
            # gthread gives a deferred connection the keep-alive timeout; a request
            # being read has its own deadline.
            conn.timeout = min(conn.timeout, pending.deadline)
            self._next_expiry = min(self._next_expiry, conn.timeout)

    def murder_keepalived(self, force=False):
        """Close expired idle connections; at the connection limit, also the oldest idle one.

        gthread stops accepting at worker_connections, and an idle kept-alive connection
        may wait 95 s: without this, idle connections could keep the worker deaf that long.
        """
        super().murder_keepalived(force)
        while self.keepalived_conns and self.nr_conns >= self.worker_connections:
            conn = self.keepalived_conns.popleft()
            self._forget(conn.sock)
            self.nr_conns -= 1
            conn.close()

    def murder_pending(self):
        """Close connections whose request did not arrive in time, and finished lingerers."""
        now = time.monotonic()
        if self.pending_conns and now >= self._next_expiry:
            # Deadlines differ per connection, so the deque is not in deadline order.
            expired = [conn for conn in self.pending_conns if conn.timeout <= now]
            for conn in expired:
                self.pending_conns.remove(conn)
                self._forget(conn.sock)
                self.nr_conns -= 1
                conn.close()
            self._next_expiry = min((c.timeout for c in self.pending_conns), default=now + 1)
        while self.lingering:
            conn = next(iter(self.lingering))
            if conn.timeout > now:
                break
            self._end_linger(conn)

    def _linger(self, conn) -> None:
        """Close like gunicorn's close_graceful (FIN, then read until the client closes),
        but wait in the poller: a client that never closes costs no time on the main loop."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._drain, conn))
        except (OSError, ValueError, KeyError):
            util.close(conn.sock)
            return
        conn.timeout = time.monotonic() + LINGER_S
        conn.relay_drained = 0
        self.lingering[conn] = None

    def _drain(self, conn, sock) -> None:
        try:
            data = sock.recv(LINGER_MAX_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        conn.relay_drained += len(data)
        if not data or conn.relay_drained >= LINGER_MAX_BYTES:
            self._end_linger(conn)

    def _end_linger(self, conn) -> None:
        self.lingering.pop(conn, None)
        self._forget(conn.sock)
        util.close(conn.sock)

    def _forget(self, sock) -> None:
        with contextlib.suppress(OSError, KeyError, ValueError):  # not registered, or closed
            self.poller.unregister(sock)
