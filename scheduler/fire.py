"""Fire one relay-in call at the API, the way a best-effort scheduler needs it done.

Retries connection errors, timeouts, 5xx and 429 (honouring Retry-After)
with exponential backoff and full jitter, within a total deadline; never
retries another 4xx. While the server answers ``"complete": false`` (its
own time budget ran out) it fires again, at once when that call stored rows
and after the backoff when it stored none, within the same deadline. Each call
is cut off at its timeout however slowly the answer comes, and an answer that
is not relay's envelope is a failure, whatever its status.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import requests
import urllib3

from relay.sources import http

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
SUCCESS = frozenset({200, 201, 204})
# Heroku's router cuts a request at 30 s; wait a little longer than that for an answer.
REQUEST_TIMEOUT_S = 35.0
# relay's answers to a relay-in are an envelope of a few kB.
MAX_ANSWER_BYTES = 1 << 20


@dataclasses.dataclass
class Outcome:
    source: str
    status: int | None  # the last HTTP status, None if no answer ever came
    processed: int = 0
    attempts: int = 0
    duration_s: float = 0.0
    error: str | None = None
    foreign: bool = False  # the last answer was not relay's envelope (whatever its status)

    @property
    def ok(self) -> bool:
        if self.foreign:
            return False
        return self.status in (201, 204) or (self.status == 200 and self.error is None)

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "status": self.status,
            "processed": self.processed,
            "attempts": self.attempts,
            "duration_s": round(self.duration_s, 3),
            **({"error": self.error} if self.error else {}),
        }


def retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000": UTC, with no zone said
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - datetime.now(UTC)).total_seconds())


def fire(
    base_url: str,
    token: str,
    source: str,
    symbols: Sequence[str] | None = None,
    *,
    deadline_s: float = 300.0,
    session: requests.Session | None = None,
    backoff_s: float = 1.0,
    max_backoff_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
    stop: threading.Event | None = None,
) -> Outcome:
    """POST /relay-api/v1/relay-in/{source} until it succeeds, fails for good, or time is up."""
    session = session or http.new_session()
    rng = rng or random.Random()
    started = clock()
    deadline = started + deadline_s
    url = f"{base_url.rstrip('/')}/relay-api/v1/relay-in/{source}"
    headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "identity"}
    body = {"symbols": list(symbols)} if symbols else None
    outcome = Outcome(source=source, status=None)
    failures = 0  # consecutive failed attempts, for the backoff
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            outcome.error = outcome.error or "deadline passed"
            break
        outcome.attempts += 1
        wait: float | None = None
        try:
            status, answer_headers, content = _post(
                session, url, body, headers, min(REQUEST_TIMEOUT_S, remaining)
            )
        except requests.RequestException as exc:
            outcome.status, outcome.error = None, f"{type(exc).__name__}"
            failures += 1
        else:
            outcome.status = status
            body_json = _json(content)
            if status in SUCCESS:
                data = _data(body_json) if status != 204 else {"processed": 0}
                processed = data.get("processed") if data is not None else None
                if type(processed) is not int or processed < 0:
                    outcome.error, outcome.foreign = f"HTTP {status} is not relay's answer", True
                    break  # another server, or a proxy: asking again will not change it
                outcome.processed += processed
                outcome.error = None
                if data.get("complete", True) is not False or (stop and stop.is_set()):
                    break
                if processed:
                    failures = 0
                    continue  # the server ran out of its time budget: go on at once
                failures += 1  # none stored (the upstream paused?): back off, no tight loop
            else:
                outcome.error = _message(status, body_json)
                if status not in RETRY_STATUSES:
                    break  # a 4xx other than 429 will not get better by asking again
                failures += 1
                wait = retry_after(answer_headers.get("Retry-After"))
        if stop is not None and stop.is_set():
            break
        if wait is None:
            wait = rng.uniform(0, min(max_backoff_s, backoff_s * 2 ** (failures - 1)))
        if clock() + wait >= deadline:
            outcome.error = (outcome.error or "incomplete, nothing stored") + " (deadline reached)"
            break
        log.info(
            "%s: attempt %d failed (%s), retrying in %.1f s",
            source,
            outcome.attempts,
            outcome.error or "nothing stored, not complete",
            wait,
        )
        if stop is not None:
            if stop.wait(wait):
                break
        else:
            sleep(wait)
    outcome.duration_s = clock() - started
    return outcome


def _post(
    session: requests.Session, url: str, body, headers: dict, timeout: float
) -> tuple[int, Mapping[str, str], bytes]:
    """One call, answer and all, within ``timeout`` however slowly it comes."""
    with http.Watch(timeout) as watch:
        try:
            resp = session.post(
                url, json=body, headers=headers, timeout=timeout, stream=True,
                # relay's session reads nothing from the environment (no .netrc may replace
                # the bearer token); the proxy and CA bundle a deployment sets still apply
                proxies=requests.utils.get_environ_proxies(url), verify=_ca_bundle(),
            )  # fmt: skip
            try:
                content = resp.raw.read(MAX_ANSWER_BYTES + 1, decode_content=False)
            finally:
                resp.close()
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if watch.expired:
                raise requests.Timeout("no whole answer in time") from exc
            if isinstance(exc, requests.RequestException):
                raise
            raise requests.ConnectionError(type(exc).__name__) from exc
    if watch.expired:
        raise requests.Timeout("no whole answer in time")
    if len(content) > MAX_ANSWER_BYTES:
        raise requests.ConnectionError("an answer larger than relay gives")
    return resp.status_code, resp.headers, content


def _ca_bundle() -> str | bool:
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


def _json(content: bytes):
    try:
        return json.loads(content) if content else None
    except (ValueError, RecursionError):
        return None


def _data(body) -> dict | None:
    """The ``data`` of relay's envelope; None when the body is not one."""
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else None


def _message(status: int, body) -> str:
    message = body.get("message") if isinstance(body, dict) else None
    return message[:300] if isinstance(message, str) else f"HTTP {status}"
