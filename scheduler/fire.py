"""Fire one relay-in call at the API, the way a best-effort scheduler needs it done.

Retries connection errors, timeouts, 5xx and 429 (honouring Retry-After)
with exponential backoff and full jitter, within a total deadline; never
retries another 4xx. While the server answers ``"complete": false`` (its
own time budget ran out) it fires again at once, within the same deadline.
"""

from __future__ import annotations

import dataclasses
import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import requests

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
SUCCESS = frozenset({200, 201, 204})
# Heroku's router cuts a request at 30 s; wait a little longer than that for an answer.
REQUEST_TIMEOUT_S = 35.0


@dataclasses.dataclass
class Outcome:
    source: str
    status: int | None  # the last HTTP status, None if no answer ever came
    processed: int = 0
    attempts: int = 0
    duration_s: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
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
    session = session or requests.Session()
    rng = rng or random.Random()
    started = clock()
    deadline = started + deadline_s
    url = f"{base_url.rstrip('/')}/relay-api/v1/relay-in/{source}"
    headers = {"Authorization": f"Bearer {token}"}
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
            resp = session.post(
                url, json=body, headers=headers, timeout=min(REQUEST_TIMEOUT_S, remaining)
            )
        except requests.RequestException as exc:
            outcome.status, outcome.error = None, f"{type(exc).__name__}"
            failures += 1
        else:
            outcome.status = resp.status_code
            data = _data(resp)
            if resp.status_code in SUCCESS:
                outcome.processed += int(data.get("processed", 0) or 0)
                outcome.error = None
                failures = 0
                if data.get("complete", True) is False and not (stop and stop.is_set()):
                    continue  # the server ran out of its time budget: go on at once
                break
            outcome.error = _message(resp)
            if resp.status_code not in RETRY_STATUSES:
                break  # a 4xx other than 429 will not get better by asking again
            failures += 1
            wait = retry_after(resp.headers.get("Retry-After"))
        if stop is not None and stop.is_set():
            break
        if wait is None:
            wait = rng.uniform(0, min(max_backoff_s, backoff_s * 2 ** (failures - 1)))
        if clock() + wait >= deadline:
            outcome.error = (outcome.error or "failed") + " (deadline reached)"
            break
        log.info(
            "%s: attempt %d failed (%s), retrying in %.1f s",
            source,
            outcome.attempts,
            outcome.error,
            wait,
        )
        if stop is not None:
            if stop.wait(wait):
                break
        else:
            sleep(wait)
    outcome.duration_s = clock() - started
    return outcome


def _data(resp: requests.Response) -> dict:
    if not resp.content:
        return {}
    try:
        body = resp.json()
    except ValueError:
        return {}
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else {}


def _message(resp: requests.Response) -> str:
    try:
        body = resp.json()
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            return body["message"][:300]
    except ValueError:
        pass
    return f"HTTP {resp.status_code}"
