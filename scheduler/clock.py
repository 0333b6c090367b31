"""The clock process: fire the schedule's relay-in jobs on time, in-process.

Each job runs in its own thread with at most one instance at a time, so a
slow or failing job neither delays nor stops the others and never overlaps
itself. SIGTERM lets the running calls finish and exits.
"""

from __future__ import annotations

import dataclasses
import logging
import re
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
    tables = document.get("jobs", {})
    if not isinstance(tables, dict):
        raise ValueError(f"{path.name}: jobs must be tables ([jobs.NAME])")
    for name, table in tables.items():
        where = f"{path.name}: job {name!r}"
        if not isinstance(table, dict):
            raise ValueError(f"{where} must be a table ([jobs.{name}])")
        unknown = set(table) - {"cron", "symbols", "source", "enabled"}
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ValueError(f"{where}: enabled must be true or false")
        if not enabled:
            jobs.pop(name, None)
            continue
        default = jobs.get(name)
        cron = table.get("cron", default.cron if default else None)
        if not isinstance(cron, str):
            raise ValueError(f"{where} needs a cron string")
        trigger(cron)  # fail at start, not at the first firing
        source = table.get("source", name)
        if source not in BY_NAME:
            raise ValueError(f"{where}: no source {source!r}")
        symbols = table.get("symbols", list(default.symbols) if default else [])
        if not (isinstance(symbols, list) and all(isinstance(s, str) and s for s in symbols)):
            raise ValueError(f"{where}: symbols must be a list of symbol strings")
        jobs[name] = Job(source=source, cron=cron, symbols=tuple(symbols))
    if not jobs:
        raise ValueError(f"{path.name}: every job is disabled")
    return list(jobs.values())


def trigger(cron: str) -> CronTrigger:
    """Five fields (minute hour day month weekday) as crontab; six adds seconds in front.

    Weekday numbers are crontab's (0 and 7 Sunday), names as written (mon-fri).
    """
    fields = cron.split()
    if len(fields) == 5:
        fields.insert(0, "0")
    if len(fields) != 6:
        raise ValueError(f"cron {cron!r} must have 5 or 6 fields")
    second, minute, hour, day, month, day_of_week = fields
    if day != "*" and day_of_week != "*":
        # crontab fires when either matches, APScheduler only when both do: ask for one.
        raise ValueError(f"cron {cron!r}: give a day of the month or a weekday, not both")
    return CronTrigger(
        second=second, minute=minute, hour=hour, day=day, month=month,
        day_of_week=_weekdays(day_of_week), timezone="UTC",
    )  # fmt: skip


_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NUMBER = {name: str(number) for number, name in enumerate(_DAYS[:7])}
# One part of crontab's weekday list: * or a day, then -day, then /step.
_WEEKDAY_PART = re.compile(r"^(\*|[0-7])(?:-([0-7]))?(?:/([1-9][0-9]?))?$")


def _weekdays(field: str) -> str:
    """crontab's weekday field as APScheduler reads it: APScheduler counts 0 as Monday (and
    refuses sun-sat), so every part, numbers or names, becomes the names of its days."""
    days = []
    for part in field.split(","):
        numbered = re.sub(
            r"[a-z]{3}", lambda m: _DAY_NUMBER.get(m.group(), m.group()), part.lower()
        )
        match = _WEEKDAY_PART.match(numbered)
        start, end, step = match.groups() if match else (None, None, None)
        if part == "*":
            return "*"
        if match is None or (start == "*" and end) or (end and int(end) < int(start)):
            raise ValueError(f"weekday {part!r} is not crontab's (0-7 or sun-sat, a-b, /n)")
        first = 0 if start == "*" else int(start)
        last = int(end) if end else (7 if start == "*" or step else first)
        days += [_DAYS[day] for day in range(first, last + 1, int(step or 1))]
    return ",".join(dict.fromkeys(days))


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
