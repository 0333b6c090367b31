"""The clock process: fire the schedule's relay-in jobs on time, in-process.

Each job runs in its own thread with at most one instance at a time, so a
slow or failing job neither delays nor stops the others and never overlaps
itself. SIGTERM lets the running calls finish and exits.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from relay.sources.registry import BY_NAME, SOURCES

log = logging.getLogger(__name__)

SCHEDULE = Path(__file__).resolve().parent / "schedule.toml"


@dataclasses.dataclass(frozen=True)
class Job:
    source: str
    cron: str
    symbols: tuple[str, ...] = ()


def load_schedule(path: Path = SCHEDULE) -> list[Job]:
    """Every source's default job (its ``cron`` in relay.sources), then ``path``'s changes.

    A ``[jobs.NAME]`` table changes a source's ``cron`` or ``symbols``, adds a job (with
    ``source``), or drops one (``enabled = false``).
    """
    jobs = {source.name: Job(source=source.name, cron=source.cron) for source in SOURCES}
    document = {}
    if path.exists():
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    for name, table in document.get("jobs", {}).items():
        if table.get("enabled", True) is False:
            jobs.pop(name, None)
            continue
        default = jobs.get(name)
        cron = table.get("cron", default.cron if default else None)
        if not isinstance(cron, str):
            raise ValueError(f"{path.name}: job {name!r} needs a cron string")
        trigger(cron)  # fail at start, not at the first firing
        source = table.get("source", name)
        if source not in BY_NAME:
            raise ValueError(f"{path.name}: job {name!r}: no source {source!r}")
        symbols = tuple(table.get("symbols", default.symbols if default else ()))
        jobs[name] = Job(source=source, cron=cron, symbols=symbols)
    if not jobs:
        raise ValueError(f"{path.name}: every job is disabled")
    return list(jobs.values())


def trigger(cron: str) -> CronTrigger:
    """Five fields (minute hour day month weekday) as crontab; six adds seconds in front.

    Weekdays are best written by name (mon-fri): APScheduler counts 0 as Monday.
    """
    fields = cron.split()
    if len(fields) == 5:
        return CronTrigger.from_crontab(cron, timezone="UTC")
    if len(fields) == 6:
        second, minute, hour, day, month, day_of_week = fields
        return CronTrigger(
            second=second, minute=minute, hour=hour, day=day, month=month,
            day_of_week=day_of_week, timezone="UTC",
        )  # fmt: skip
    raise ValueError(f"cron {cron!r} must have 5 or 6 fields")


def iso(when: datetime | None) -> str:
    """UTC ISO 8601 with Z, to the second ("never" for no time)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else "never"


START_SPACING_S = 1.0


class Clock:
    """Run ``action(job, stop)`` for each job on its schedule until stopped.

    With ``fire_at_start``, every job is overdue at start (nothing has run in this
    process yet): each fires once, START_SPACING_S after the one before it, then on
    its cron. At start and after each firing, one log line per job says when it runs
    next.
    """

    def __init__(
        self,
        jobs: list[Job],
        action: Callable[[Job, threading.Event], object],
        *,
        fire_at_start: bool = False,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.jobs = jobs
        self.action = action
        self.fire_at_start = fire_at_start
        self.now = now
        self.stopping = threading.Event()
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=max(2, len(jobs)))},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 60},
            timezone="UTC",
        )
        self.ids: dict[int, str] = {}
        for number, job in enumerate(jobs):
            self.ids[number] = f"{number}:{job.source}:{job.cron}"
            # Spaced a little apart, so the start's firings do not all ask the app's
            # small connection pools at the same instant.
            start = self.now() + timedelta(seconds=START_SPACING_S * number)
            extra = {"next_run_time": start} if fire_at_start else {}
            self.scheduler.add_job(
                self._run, trigger(job.cron), args=[number, job], id=self.ids[number],
                name=job.source, **extra,
            )  # fmt: skip

    def _run(self, number: int, job: Job) -> None:
        try:
            self.action(job, self.stopping)
        except Exception:
            # One job's failure is logged and the schedule goes on.
            log.exception("job %s failed", job.source)
        if not self.stopping.is_set():
            log.info("%s: next run %s", job.source, iso(self.next_run(number)))

    def next_run(self, number: int) -> datetime | None:
        """When job ``number`` fires next (by its cron alone, before the scheduler has it)."""
        scheduled = self.scheduler.get_job(self.ids[number])
        if scheduled is not None and scheduled.next_run_time is not None:
            return scheduled.next_run_time
        return trigger(self.jobs[number].cron).get_next_fire_time(None, self.now())

    def start(self) -> None:
        self.scheduler.start()
        for job in self.jobs:
            after = trigger(job.cron).get_next_fire_time(None, self.now())
            if self.fire_at_start:
                log.info(
                    "scheduled %s at %r: fires now (overdue at start), then next run %s",
                    job.source, job.cron, iso(after),
                )  # fmt: skip
            else:
                log.info("scheduled %s at %r: next run %s", job.source, job.cron, iso(after))

    def stop(self) -> None:
        """Let running calls finish (they see ``stopping`` and fire no more), then return."""
        self.stopping.set()
        self.scheduler.shutdown(wait=True)
