"""Relay-in runs: pull pages from an upstream and store each one whole.

A run resumes from what is stored, commits page by page, and stops early
once its time budget is spent, saying so (``complete: false``) so the
next call continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from psycopg_pool import ConnectionPool

from relay import db
from relay.errors import RelayError, UpstreamError
from relay.sources.coinapi import NAME as COINAPI
from relay.sources.coinapi import CoinAPISource, resolve_symbol
from relay.store import trades as trade_store

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclasses.dataclass
class RunResult:
    """What a relay-in stored: new rows in total and per symbol, and whether it caught up."""

    processed: int = 0
    complete: bool = True
    symbols: dict[str, dict] = dataclasses.field(default_factory=dict)

    def add(self, symbol: str, processed: int, *, complete: bool = True) -> None:
        """Count ``processed`` more new rows for ``symbol``."""
        self.processed += processed
        self.complete = self.complete and complete
        entry = self.symbols.setdefault(symbol, {"processed": 0, "complete": True})
        entry["processed"] += processed
        entry["complete"] = entry["complete"] and complete

    def as_data(self) -> dict:
        return {"processed": self.processed, "complete": self.complete, "symbols": self.symbols}


class CoinAPIRelayIn:
    """Relay CoinAPI trade history into ``symbol_data``."""

    name = "coinapi"

    def __init__(
        self,
        pool: ConnectionPool,
        source: CoinAPISource,
        *,
        symbol_template: str,
        default_symbols: Sequence[str],
        backfill_hours: int,
        budget_s: float,
        now: Callable[[], datetime] = utcnow,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.pool = pool
        self.source = source
        self.symbol_template = symbol_template
        self._default_symbols = list(default_symbols)
        self.backfill = timedelta(hours=backfill_hours)
        self.budget_s = budget_s
        self.now = now
        self.clock = clock

    def default_symbols(self) -> list[str]:
        return list(self._default_symbols)

    def resolve(self, symbol: str | None) -> str:
        return resolve_symbol(symbol, self.symbol_template)

    def run(self, symbol_ids: Sequence[str]) -> RunResult:
        """Catch each symbol up, within one time budget for the whole call.

        On failure the error carries what was stored before it (whole pages
        only), so the caller can tell the scheduler how far the run got.
        """
        deadline = self.clock() + self.budget_s
        result = RunResult()
        for symbol_id in symbol_ids:
            try:
                self._run_symbol(symbol_id, deadline, result)
            except RelayError as exc:
                exc.data.setdefault("processed", result.processed)
                exc.data.setdefault("symbols", result.symbols)
                raise
        return result

    def _run_symbol(self, symbol_id: str, deadline: float, result: RunResult) -> None:
        with db.connection(self.pool) as conn:
            start = trade_store.newest_time(conn, symbol_id)
        if start is None:
            start = self.now() - self.backfill
        while True:
            if self.clock() >= deadline:
                log.info("coinapi %s: time budget spent", symbol_id)
                result.add(symbol_id, 0, complete=False)
                return
            page = self.source.fetch_page(symbol_id, start, deadline=deadline)
            with db.connection(self.pool) as conn:
                result.add(symbol_id, trade_store.store_page(conn, symbol_id, page))
            if len(page) < self.source.page_limit:
                return
            newest = max(trade.time_exchange for trade in page)
            if newest <= start:
                # A full page that does not move forward would be fetched forever.
                raise UpstreamError(
                    f"Bad Gateway: {COINAPI} history page for {symbol_id} did not advance "
                    f"past {start.isoformat()}",
                    data={"symbol": symbol_id},
                )
            start = newest
