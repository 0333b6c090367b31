"""The ECB's relay-in: daily reference rates, backfilling gaps first."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import date, timedelta

from psycopg_pool import ConnectionPool

from relay import db
from relay.ingest import RunResult, storing
from relay.sources.ecb import client as ecb
from relay.sources.ecb import store as rate_store
from relay.sources.ecb.client import ECBSource
from relay.sources.ecb.settings import Settings
from relay.sources.source import Wiring

log = logging.getLogger(__name__)


def previous_business_day(day: date) -> date:
    """The weekday before ``day`` (TARGET holidays aside: a gap check errs towards fetching)."""
    day -= timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


class ECBRelayIn:
    """Relay the ECB's daily reference rates, backfilling whatever is missing first.

    The daily file, and the history file a gap calls for, are stored in one
    transaction: a day is stored whole or not at all, and a malformed file
    stores nothing.
    """

    name = "ecb"
    upstream = ecb.NAME
    concern = "rates"
    takes_symbols = False
    GAP_90D = timedelta(days=90)

    @classmethod
    def build(cls, settings: Settings, wiring: Wiring) -> ECBRelayIn:
        source = ECBSource(wiring.client(ecb.NAME), settings.url)
        return cls(wiring.pool, source, budget_s=wiring.budget_s, clock=wiring.clock)

    def __init__(
        self,
        pool: ConnectionPool,
        source: ECBSource,
        *,
        budget_s: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.pool = pool
        self.source = source
        self.budget_s = budget_s
        self.clock = clock

    def run(self, symbols: Sequence[str] = ()) -> RunResult:
        deadline = self.clock() + self.budget_s
        daily = self.source.fetch(ecb.DAILY, deadline=deadline)
        daily_day = max(rate.day for rate in daily)
        with db.connection(self.pool) as conn:
            newest = rate_store.newest_day(conn)
        backfill: Iterable[ecb.Rate] = ()
        if newest is None or newest < previous_business_day(daily_day):
            name = ecb.HIST_ZIP
            if newest is not None and daily_day - newest < self.GAP_90D:
                name = ecb.HIST_90D
            log.info(
                "ecb: newest stored day %s, daily is %s: backfilling from %s",
                newest,
                daily_day,
                name,
            )
            backfill = self.source.fetch(name, deadline=deadline)
        with storing(self.pool, self.upstream) as conn:
            processed = rate_store.store_rates(conn, itertools.chain(backfill, daily))
        result = RunResult()
        result.add("EUR", processed)
        return result
