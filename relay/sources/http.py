"""One HTTP client for every upstream: bounded in bytes, time and trust.

Each source module builds its requests and interprets the answers; this
module owns how a request is sent and how transport failures become relay
errors, so no resource ever sees a ``requests`` exception.

Upstreams are other people's servers, so every answer is read under three
bounds: its decoded size (gzip/deflate are decompressed here, in steps no
larger than what is still allowed), one wall-clock deadline for the whole
answer (headers and body; a watchdog shuts the socket when it passes, so a
server dripping a byte at a time cannot outlast it), and where it may lead
(redirects are followed only where the request's guard allows: by default
the same scheme, host and port, so an API key never travels elsewhere).

A URL is judged by ``url_origin``, which takes only plain ASCII http(s) URLs
and reads each with both the standard library's parser and urllib3's (what
requests connects with): a URL the two read differently, such as one with a
backslash before an ``@``, is refused rather than guarded by one reading and
fetched by the other.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import socket
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from relay.errors import UpstreamError, UpstreamTimeout

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({418, 429, 500, 502, 503, 504})
# The longest a 429/418 holds every request to an upstream: past it, requests try again
# (and meet the limit again if it still holds), so no header can stop a source for good.
MAX_PAUSE_S = 300.0
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 3
# What an API answer may decode to unless the source says otherwise.
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
READ_CHUNK = 64 * 1024
# We decode these ourselves (and count what they decode to); nothing else is asked for.
ACCEPT_ENCODING = "gzip, deflate"


DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_URL_LENGTH = 2000


class OutOfTime(UpstreamTimeout):
    """The next upstream request could only start after the run's deadline.

    Paged runs catch it and report what they stored; elsewhere it is a 504.
    """

    message = "Gateway Timeout: the relay-in's time budget was spent before the upstream answered"


class Reply:
    """An upstream's answer, read whole within its bounds."""

    __slots__ = ("content", "headers", "status_code", "url")

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes, url: str):
        self.status_code = status_code
        self.headers = CaseInsensitiveDict(headers)
        self.content = content
        self.url = url

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """Parse as JSON (raises ValueError, as requests does, when it is not)."""
        try:
            return json.loads(self.content)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


Guard = Callable[[str], None]


def url_origin(url: str) -> tuple[str, str, int]:
    """The scheme, host and port that a request for ``url`` connects to.

    Raises ValueError unless ``url`` is a plain ASCII http(s) URL with a host
    that the standard library and urllib3 both read the same way.
    """
    if len(url) > MAX_URL_LENGTH or not url.isascii() or not url.isprintable():
        raise ValueError("not a plain ASCII URL")
    if "\\" in url or " " in url:
        raise ValueError("a backslash or space in a URL")
    parts = urlsplit(url)  # ValueError for a broken IPv6 literal
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError("not an http(s) URL")
    host = (parts.hostname or "").lower()
    port = parts.port or DEFAULT_PORTS[scheme]  # ValueError for a port out of range
    try:
        theirs = urllib3.util.parse_url(url)
    except urllib3.exceptions.LocationParseError:
        raise ValueError("a URL urllib3 cannot read") from None
    if not host or (
        (theirs.host or "").lower().strip("[]"),
        theirs.port or DEFAULT_PORTS[scheme],
    ) != (host, port):
        raise ValueError("a URL that reads as two different hosts")
    return scheme, host, port


def same_origin(first_url: str) -> Guard:
    """A guard that lets a request go only where ``first_url`` went: scheme, host and port."""
    origin = url_origin(first_url)

    def guard(url: str) -> None:
        try:
            target = url_origin(url)
        except ValueError as exc:
            raise UpstreamError(f"redirected to {exc}; not followed") from None
        if target != origin:
            raise UpstreamError(f"redirected to another host ({target[1][:100]}); not followed")

    return guard


class UpstreamClient:
    """Send GET requests to one upstream, retrying what is worth retrying.

    ``deadline`` (a ``clock()`` value) bounds the retries: no new attempt
    starts, and no wait is begun, that would end after it. Each attempt,
    headers and body together, ends within ``timeout_s`` of its start.
    """

    def __init__(
        self,
        name: str,
        *,
        timeout_s: float,
        session: requests.Session | None = None,
        max_attempts: int = 3,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.name = name
        self.timeout_s = timeout_s
        self.session = session or new_session()
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self._sleep = sleep
        self.clock = clock
        # A 429/418 pauses every request to this upstream, not only the one that met it:
        # the symbols of a run share one client and one limit.
        self._resume_at = float("-inf")
        self._pause_lock = threading.Lock()

    def get(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        deadline: float | None = None,
        retry_statuses: frozenset[int] = RETRY_STATUSES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        guard: Guard | None = None,
    ) -> Reply:
        """Return the first answer that is not worth retrying (2xx or 4xx).

        ``retry_statuses`` lets a source keep a status for itself to interpret;
        ``max_bytes`` bounds the decoded body; ``guard`` raises UpstreamError for
        a URL that may not be fetched (checked before the request and at every
        redirect; default: the first URL's origin only).

        Raises UpstreamTimeout or UpstreamError when every attempt failed.
        """
        if guard is None:
            try:
                guard = same_origin(url)
            except ValueError as exc:
                raise UpstreamError(f"Bad Gateway: {self.name} URL is refused ({exc})") from None
        attempt = 0
        while True:
            attempt += 1
            self._wait_out_pause(deadline)
            timeout = self._time_for_attempt(deadline)
            try:
                resp = self._attempt(url, params, headers, max_bytes, guard, timeout)
            except _TooSlow as exc:
                if timeout < self.timeout_s:
                    # Cut short by the run's budget, not slow by the upstream's own measure:
                    # the run stops here and the next call continues.
                    raise OutOfTime() from exc
                failure: UpstreamError = UpstreamTimeout(
                    f"Gateway Timeout: {self.name} did not answer within {timeout:.3g} s"
                )
                failure.__cause__ = exc.__cause__
                wait = self._backoff(attempt)
            except _Refused as exc:
                raise UpstreamError(f"Bad Gateway: {self.name} {exc}") from exc.__cause__
            except requests.ConnectionError as exc:
                failure = UpstreamError(f"Bad Gateway: {self.name} unreachable (connection failed)")
                failure.__cause__ = exc
                wait = self._backoff(attempt)
            except requests.RequestException as exc:
                raise UpstreamError(
                    f"Bad Gateway: {self.name} request failed ({type(exc).__name__})"
                ) from exc
            else:
                if resp.status_code not in retry_statuses:
                    return resp
                failure = UpstreamError(
                    f"Bad Gateway: {self.name} answered HTTP {resp.status_code}" + _reason(resp)
                )
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                wait = retry_after if retry_after is not None else self._backoff(attempt)
                if resp.status_code in (418, 429):
                    pause = min(wait, MAX_PAUSE_S)  # a Retry-After of days is a ban, not a pause
                    with self._pause_lock:
                        self._resume_at = max(self._resume_at, self.clock() + pause)
                    failure.message += (
                        f" (rate limited; retry after {wait:g} s)"
                        if retry_after
                        else " (rate limited)"
                    )
            if attempt >= self.max_attempts or not self._fits(wait, deadline):
                log.warning(
                    "%s failed after %d attempt(s): %s", self.name, attempt, failure.message
                )
                raise failure
            log.info("%s: attempt %d failed, retrying in %.2f s", self.name, attempt, wait)
            self._sleep(wait)  # then the pause, if any, is over for this request too

    def _wait_out_pause(self, deadline: float | None) -> None:
        """Wait while the upstream asked every client of it to (a 429/418's Retry-After)."""
        with self._pause_lock:
            wait = self._resume_at - self.clock()
        if wait <= 0:
            return
        if not self._fits(wait, deadline):
            raise OutOfTime()
        log.info("%s: rate limited, every request waits %.2f s", self.name, wait)
        self._sleep(wait)

    def _time_for_attempt(self, deadline: float | None) -> float:
        """The attempt's own timeout, cut to what is left before ``deadline``."""
        if deadline is None:
            return self.timeout_s
        left = deadline - self.clock()
        if left <= 0:
            raise OutOfTime()
        return min(self.timeout_s, left)

    def _attempt(self, url, params, headers, max_bytes: int, guard: Guard, timeout: float) -> Reply:
        """One attempt, redirects included, under one wall-clock deadline."""
        headers = {"Accept-Encoding": ACCEPT_ENCODING, **(headers or {})}
        with Watch(timeout) as watch:
            for _ in range(MAX_REDIRECTS + 1):
                try:
                    guard(url)
                except UpstreamError as exc:
                    raise _Refused(exc.message) from None
                reply = self._fetch(watch, url, params, headers, max_bytes, timeout)
                location = reply.headers.get("Location")
                if reply.status_code not in REDIRECT_STATUSES or not location:
                    return reply
                try:
                    # urljoin would quietly drop control characters; a Location with
                    # them is not a URL we follow.
                    if not (location.isascii() and location.isprintable()):
                        raise ValueError(location)
                    url, params = urljoin(url, location), None
                except ValueError:
                    raise _Refused("redirected to a URL that does not parse") from None
            raise _Refused(f"redirected more than {MAX_REDIRECTS} times")

    def _fetch(self, watch: Watch, url, params, headers, max_bytes: int, timeout: float) -> Reply:
        try:
            resp = self.session.get(
                url,
                params=params,
                headers=headers,
                timeout=timeout,
                stream=True,
                allow_redirects=False,
            )
            try:
                content = read_body(resp, max_bytes)
            finally:
                resp.close()
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if watch.expired or isinstance(exc, _TIMEOUTS):
                raise _TooSlow() from exc
            if isinstance(exc, requests.RequestException):
                raise
            raise _Refused(f"sent a broken answer ({type(exc).__name__})") from exc
        except ValueError as exc:
            # An answer requests cannot take apart (a session other than new_session()'s
            # reads a redirect's Location even when not following it).
            raise _Refused(f"sent an answer that does not parse ({exc})") from exc
        if watch.expired:
            raise _TooSlow()
        return Reply(resp.status_code, resp.headers, content, resp.url)

    def _backoff(self, attempt: int) -> float:
        return self.backoff_s * (2 ** (attempt - 1))

    def _fits(self, wait: float, deadline: float | None) -> bool:
        return deadline is None or self.clock() + wait < deadline


_TIMEOUTS = (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)


class _TooSlow(Exception):
    """The attempt's deadline passed (the socket was shut, or a read timed out)."""


class _Refused(Exception):
    """An answer we will not take: too large, undecodable, or leading elsewhere."""


def read_body(resp: requests.Response, max_bytes: int) -> bytes:
    """Read a streamed answer, decoding gzip/deflate ourselves, stopping past ``max_bytes``.

    Bytes are counted as they are decoded, and never more than is still allowed
    is decoded at once, so neither a huge body nor a small compressed one that
    expands to gigabytes can take more memory than the cap.
    """
    encoding = resp.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        decoder = None
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise _Refused(f"sent {int(declared)} bytes, more than the {max_bytes} bytes allowed")
    elif encoding in ("gzip", "x-gzip", "deflate"):
        decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header
    else:
        raise _Refused(f"sent an unsupported Content-Encoding ({encoding[:40]})")
    body = bytearray()
    received = 0
    try:
        for chunk in resp.raw.stream(READ_CHUNK, decode_content=False):
            received += len(chunk)
            if decoder is None:
                body += chunk
            else:
                data = chunk
                while data and len(body) <= max_bytes:
                    if decoder.eof:  # another gzip member follows (RFC 1952 allows several)
                        decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)
                    body += decoder.decompress(data, max_bytes - len(body) + 1)
                    data = decoder.unconsumed_tail or (decoder.unused_data if decoder.eof else b"")
            # Compressed bytes count too: members that decode to nothing are no free ride.
            if len(body) > max_bytes or received > max_bytes + READ_CHUNK:
                raise _Refused(f"sent more than the {max_bytes} bytes allowed")
    except zlib.error as exc:
        raise _Refused(f"sent a body that does not decode as {encoding}") from exc
    if decoder is not None and not decoder.eof:
        raise _Refused(f"sent a truncated {encoding} body")
    return bytes(body)


# -- the deadline watchdog ------------------------------------------------------------

_current = threading.local()


class Watch:
    """Shut the sockets of one attempt when its deadline passes.

    A socket read timeout bounds each read, not the answer: a server sending
    one byte every few seconds never trips it. Shutting the socket down from a
    timer thread ends any read blocked on it at once (it sees end of file).
    It watches the requests made, in its ``with`` block and on its thread, through
    a session from new_session() (scheduler.fire uses it too).
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Watch:
        _current.watch = self
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        _current.watch = None

    def track(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if self.expired:
                _shut(sock)
            else:
                self._sockets.append(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


class _Watched:
    """A urllib3 connection that hands its socket to the current attempt's watch."""

    def getresponse(self, *args, **kwargs):
        watch = getattr(_current, "watch", None)
        if watch is not None:
            watch.track(self.sock)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPPool,
            "https": _WatchedHTTPSPool,
        }


class _Session(requests.Session):
    """Redirects are relay's to follow (UpstreamClient._attempt: each hop guarded, its body
    read within the bounds). Left to requests, a redirect's whole body would be read and
    decoded to prepare the next request, even with allow_redirects=False: past every bound.
    """

    def get_redirect_target(self, resp: requests.Response) -> None:
        return None


def new_session() -> requests.Session:
    """A requests Session whose connections the attempt deadline can cut."""
    session = _Session()
    session.trust_env = False  # no proxy or .netrc credentials picked up from the environment
    adapter = _WatchedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


# -- reading answers ------------------------------------------------------------------


def parse_retry_after(value: str | None) -> float | None:
    """Read Retry-After as seconds (a number or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds != seconds or seconds == float("inf"):  # NaN, inf: not a time to wait
        return None
    return max(0.0, seconds)


def _reason(resp: Reply) -> str:
    """A short, safe excerpt of an upstream error body for our message."""
    text = resp.content[:400].decode("utf-8", "replace").strip().replace("\n", " ")
    text = "".join(c for c in text if c.isprintable())
    return f": {text[:200]}" if text else ""


def json_body(resp: Reply, upstream: str) -> Any:
    """Parse a JSON body keeping every digit (floats become Decimal)."""
    try:
        return json.loads(resp.content, parse_float=Decimal)
    except RecursionError:
        raise UpstreamError(f"Bad Gateway: {upstream} sent JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UpstreamError(f"Bad Gateway: {upstream} sent malformed JSON") from exc
