"""CoinMarketCap's relay-in: a listings snapshot, then missing logos."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from psycopg_pool import ConnectionPool

from relay import db
from relay.errors import RelayError, UpstreamError
from relay.ingest import RunResult, storing, utcnow
from relay.sources.cmc import client as cmc
from relay.sources.cmc import store as coin_store
from relay.sources.cmc.client import CMCSource
from relay.sources.cmc.settings import Settings
from relay.sources.source import Wiring

log = logging.getLogger(__name__)


class CMCRelayIn:
    """Take one CoinMarketCap listings snapshot, then logos for coins that lack one.

    The snapshot (coins, quotes and today's daily row), however many pages
    it was asked for in, is one transaction. Logos come after, up to
    ``concurrency`` at once and each stored on its own, within what is left
    of the time budget: a logo that fails or is not reached is tried again
    next run, and never fails the snapshot.
    """

    name = "cmc"
    upstream = cmc.NAME
    concern = "coins"
    takes_symbols = False
    LOGOS_PER_RUN = 1000  # 10 info requests; the rest wait for the next run

    @classmethod
    def build(cls, settings: Settings, wiring: Wiring) -> CMCRelayIn:
        source = CMCSource(
            wiring.client(cmc.NAME),
            settings.url,
            settings.api_key,
            settings.limit,
            logo_hosts=settings.logo_hosts,
        )
        return cls(
            wiring.pool,
            source,
            budget_s=wiring.budget_s,
            now=wiring.now,
            clock=wiring.clock,
            uuidgen=wiring.uuidgen,
            concurrency=wiring.concurrency,
        )

    def __init__(
        self,
        pool: ConnectionPool,
        source: CMCSource,
        *,
        budget_s: float,
        now: Callable[[], datetime] = utcnow,
        clock: Callable[[], float] = time.monotonic,
        uuidgen: Callable[[], uuid.UUID] = uuid.uuid4,
        concurrency: int = 1,
    ):
        self.pool = pool
        self.source = source
        self.budget_s = budget_s
        self.now = now
        self.clock = clock
        self.uuidgen = uuidgen
        self.concurrency = concurrency

    def run(self, symbols: Sequence[str] = ()) -> RunResult:
        deadline = self.clock() + self.budget_s
        coins = self.source.listings(deadline=deadline)
        snapshot = self.uuidgen()
        with storing(self.pool, self.upstream) as conn:
            stored = coin_store.store_snapshot(conn, snapshot, self.now(), coins)
        result = RunResult()
        result.add("listings", stored)
        result.details = {"snapshot": str(snapshot), "logos": self._logos(deadline)}
        return result

    def _logos(self, deadline: float) -> dict:
        with db.connection(self.pool) as conn:
            missing = coin_store.coins_without_logo(conn, self.LOGOS_PER_RUN)
        if not missing:
            return {"stored": 0, "failed": 0, "complete": True}
        try:
            urls = self.source.logo_urls(missing, deadline=deadline)
        except UpstreamError as exc:
            log.warning("cmc: logo info failed: %s", exc.message)
            return {"stored": 0, "failed": len(missing), "complete": False}
        coins_by_url: dict[str, list[int]] = {}  # coins sharing a URL share one download
        for cmc_id, url in urls.items():
            coins_by_url.setdefault(url, []).append(cmc_id)
        workers = max(1, min(self.concurrency, len(coins_by_url)))
        with ThreadPoolExecutor(workers, thread_name_prefix="cmc-logo") as pool:
            outcomes = [
                (outcome, len(coins))
                for outcome, coins in zip(
                    pool.map(lambda item: self._try_logo(*item, deadline), coins_by_url.items()),
                    coins_by_url.values(),
                    strict=True,
                )
            ]
        stored = sum(n for outcome, n in outcomes if outcome is True)
        failed = sum(n for outcome, n in outcomes if outcome is False)
        if stored:
            with db.connection(self.pool) as conn:
                coin_store.announce_logos(conn)
        # complete: every coin that lacked a logo has one now
        return {
            "stored": stored,
            "failed": failed,
            "complete": stored == len(missing),
        }

    def _try_logo(self, url: str, cmc_ids: Sequence[int], deadline: float) -> bool | None:
        """_logo, with a failure of this one logo (the database's too) counted, not raised:
        the snapshot is stored and the logos stored before it are announced whatever."""
        try:
            return self._logo(url, cmc_ids, deadline)
        except RelayError as exc:
            log.warning("cmc: logo %s not stored: %s", url[:200], exc.message)
            return False

    def _logo(self, url: str, cmc_ids: Sequence[int], deadline: float) -> bool | None:
        """Give coins the logo at ``url``: True when done, False when it failed, None if no time."""
        if self.clock() >= deadline:
            return None
        with db.connection(self.pool) as conn:
            logo_id = coin_store.logo_for_url(conn, url)
        if logo_id is None:
            logo = self.source.download_logo(url, deadline=deadline)
            if logo is None:
                return False
            with storing(self.pool, self.upstream) as conn:
                logo_id = coin_store.store_logo(conn, logo)
        with db.connection(self.pool) as conn:
            for cmc_id in cmc_ids:
                coin_store.set_logo(conn, cmc_id, logo_id)
        return True
