"""The clock inside ``python -m relay serve`` (and ``demo``): the schedule, fired at a local server.

It waits until the server answers ``/health``, then fires every job once (nothing has
run yet) and on its cron after that, with a ``relay:in`` token the caller mints. A
source whose upstream needs a key that is not set is skipped, with one line naming the
variable to set.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import requests

from relay.sources.registry import BY_NAME
from scheduler.clock import SCHEDULE, Clock, Job, load_schedule
from scheduler.fire import fire

log = logging.getLogger("scheduler.local")


def runnable(jobs: list[Job], env: Mapping[str, str]) -> list[Job]:
    """The jobs whose source has what it needs; one log line for each source skipped."""
    kept, skipped = [], set()
    for job in jobs:
        variable = BY_NAME[job.source].key_variable
        if variable and not env.get(variable, "").strip():
            if job.source not in skipped:
                log.warning(
                    "clock: %s skipped: %s is not set (set it to relay %s)",
                    job.source, variable, BY_NAME[job.source].relay_in.upstream,
                )  # fmt: skip
                skipped.add(job.source)
            continue
        kept.append(job)
    return kept


def wait_for_health(base_url: str, stop: threading.Event, timeout_s: float) -> bool:
    """Whether ``GET /health`` answered 200 before ``timeout_s`` (False if stopped first)."""
    deadline = time.monotonic() + timeout_s
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            if requests.get(f"{base_url}/health", timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        stop.wait(0.2)
    return False


class LocalClock:
    """Fire the schedule at ``base_url`` from a thread of this process, until ``stop()``."""

    def __init__(
        self,
        base_url: str,
        token: str,
        env: Mapping[str, str],
        *,
        schedule: Path = SCHEDULE,
        health_timeout_s: float = 120.0,
        deadline_s: float = 300.0,
        on_first_pass: Callable[[], object] | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.deadline_s = deadline_s
        self.health_timeout_s = health_timeout_s
        self.jobs = runnable(load_schedule(schedule), env)
        # called once, when every job has fired once (however each firing ended)
        self.on_first_pass = on_first_pass
        self._first: set[int] = set()
        self.stopping = threading.Event()
        self.clock: Clock | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._start, name="relay-clock", daemon=True)

    def start(self) -> LocalClock:
        self._thread.start()
        return self

    def _start(self) -> None:
        if not self.jobs:
            log.warning("clock: no job to fire")
            return
        if not wait_for_health(self.base_url, self.stopping, self.health_timeout_s):
            if not self.stopping.is_set():
                log.error("clock: %s/health did not answer; firing nothing", self.base_url)
            return
        with self._lock:
            if self.stopping.is_set():
                return
            self.clock = Clock(self.jobs, self._fire, fire_at_start=True)
            self.clock.start()

    def _fire(self, job: Job, stop: threading.Event) -> None:
        try:
            outcome = fire(
                self.base_url, self.token, job.source, job.symbols or None,
                deadline_s=self.deadline_s, stop=stop,
            )  # fmt: skip
            log.info("clock: %s", json.dumps(outcome.as_dict()))
        finally:
            self._fired(job, stop)

    def _fired(self, job: Job, stop: threading.Event) -> None:
        with self._lock:
            before = len(self._first)
            self._first.add(id(job))
            done = before < len(self.jobs) == len(self._first)
        if done and self.on_first_pass is not None and not stop.is_set():
            self.on_first_pass()

    def stop(self) -> None:
        """Fire nothing more; let running calls finish."""
        with self._lock:
            self.stopping.set()
            clock = self.clock
        if clock is not None:
            clock.stop()
