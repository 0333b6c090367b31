"""One HTTP client for every upstream: timeouts, bounded retries, Retry-After.

Each source module builds its requests and interprets the answers; this
module owns how a request is sent and how transport failures become relay
errors, so no resource ever sees a ``requests`` exception.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import requests

from relay.errors import UpstreamError, UpstreamTimeout

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({418, 429, 500, 502, 503, 504})
# A body larger than this is not a page we asked for; refuse it rather than
# hold it in memory.
MAX_BODY_BYTES = 64 * 1024 * 1024


class OutOfTime(Exception):
    """The next upstream request could only start after the run's deadline."""


class UpstreamClient:
    """Send GET requests to one upstream, retrying what is worth retrying.

    ``deadline`` (a ``clock()`` value) bounds the retries: no new attempt
    starts, and no wait is begun, that would end after it. Each attempt is
    bounded by ``timeout_s`` (connect and read).
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
        self.session = session or requests.Session()
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self._sleep = sleep
        self.clock = clock

    def get(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        deadline: float | None = None,
        retry_statuses: frozenset[int] = RETRY_STATUSES,
    ) -> requests.Response:
        """Return the first answer that is not worth retrying (2xx or 4xx).

        ``retry_statuses`` lets a source keep a status for itself to interpret.

        Raises UpstreamTimeout or UpstreamError when every attempt failed.
        """
        attempt = 0
        while True:
            attempt += 1
            timeout = self.timeout_s
            try:
                resp = self.session.get(url, params=params, headers=headers, timeout=timeout)
                body = resp.content
            except requests.Timeout as exc:
                failure: UpstreamError = UpstreamTimeout(
                    f"Gateway Timeout: {self.name} did not answer within {timeout:g} s"
                )
                failure.__cause__ = exc
                wait = self._backoff(attempt)
            except requests.ConnectionError as exc:
                failure = UpstreamError(f"Bad Gateway: {self.name} unreachable (connection failed)")
                failure.__cause__ = exc
                wait = self._backoff(attempt)
            except requests.RequestException as exc:
                raise UpstreamError(
                    f"Bad Gateway: {self.name} request failed ({type(exc).__name__})"
                ) from exc
            else:
                if len(body) > MAX_BODY_BYTES:
                    raise UpstreamError(f"Bad Gateway: {self.name} sent an oversized body")
                if resp.status_code not in retry_statuses:
                    return resp
                failure = UpstreamError(
                    f"Bad Gateway: {self.name} answered HTTP {resp.status_code}" + _reason(resp)
                )
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                wait = retry_after if retry_after is not None else self._backoff(attempt)
                if resp.status_code in (418, 429):
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
            self._sleep(wait)

    def _backoff(self, attempt: int) -> float:
        return self.backoff_s * (2 ** (attempt - 1))

    def _fits(self, wait: float, deadline: float | None) -> bool:
        return deadline is None or self.clock() + wait < deadline


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
    return max(0.0, seconds) if seconds == seconds else None  # NaN guard


def _reason(resp: requests.Response) -> str:
    """A short, safe excerpt of an upstream error body for our message."""
    text = resp.text.strip().replace("\n", " ")
    return f": {text[:200]}" if text else ""


def json_body(resp: requests.Response, upstream: str) -> Any:
    """Parse a JSON body keeping every digit (floats become Decimal)."""
    try:
        return json.loads(resp.content, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UpstreamError(f"Bad Gateway: {upstream} sent malformed JSON") from exc
