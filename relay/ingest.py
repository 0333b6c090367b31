"""Relay-in runs: pull pages from an upstream and store each one whole.

A run resumes from what is stored, commits page by page, and stops early
once its time budget is spent, saying so (``complete: false``) so the
next call continues where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg_pool import ConnectionPool

from relay import db
from relay.errors import RelayError, UpstreamError
from relay.sources import binance, cmc, ecb
from relay.sources.binance import NAME as BINANCE
from relay.sources.binance import BinanceSource
from relay.sources.cmc import CMCSource
from relay.sources.coinapi import NAME as COINAPI
from relay.sources.coinapi import CoinAPISource, resolve_symbol
from relay.sources.ecb import ECBSource
from relay.sources.http import OutOfTime
from relay.store import candles as candle_store
from relay.store import coins as coin_store
from relay.store import rates as rate_store
from relay.store import trades as trade_store

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def storing(pool: ConnectionPool, upstream: str) -> Iterator[psycopg.Connection]:
    """A connection to store what ``upstream`` sent: a value PostgreSQL refuses is its fault.

    The parsers refuse what they can name first; this is the net under them,
    so an odd value is a 502 naming the upstream, never a 500.
    """
    try:
        with db.connection(pool) as conn:
            yield conn
    except (psycopg.DataError, UnicodeEncodeError) as exc:
        raise UpstreamError(
            f"Bad Gateway: {upstream} sent a value the database cannot store ({type(exc).__name__})"
        ) from exc


@dataclasses.dataclass
class RunResult:
    """What a relay-in stored: new rows in total and per symbol, and whether it caught up."""

    processed: int = 0
    complete: bool = True
    symbols: dict[str, dict] = dataclasses.field(default_factory=dict)
    details: dict = dataclasses.field(default_factory=dict)  # source-specific extras

    def add(self, symbol: str, processed: int, *, complete: bool = True) -> None:
        """Count ``processed`` more new rows for ``symbol``."""
        self.processed += processed
        self.complete = self.complete and complete
        entry = self.symbols.setdefault(symbol, {"processed": 0, "complete": True})
        entry["processed"] += processed
        entry["complete"] = entry["complete"] and complete

    @property
    def http_status(self) -> int:
        """201 when rows were stored, 204 when caught up with nothing new, else 200."""
        if self.processed:
            return 201
        return 204 if self.complete else 200

    def as_data(self) -> dict:
        return {
            "processed": self.processed,
            "complete": self.complete,
            "symbols": self.symbols,
            **self.details,
        }


class PagedRelayIn:
    """Read a source's history page by page from each symbol's resume point.

    Subclasses say where a symbol resumes, how a page is fetched and stored,
    and where the next page starts. Each page is stored in its own
    transaction, so what was stored before a failure or the deadline stays
    and the next run continues from there.
    """

    name: str  # the route segment: /relay-in/{name}
    upstream: str  # how messages name the upstream
    takes_symbols = True

    def __init__(
        self,
        pool: ConnectionPool,
        *,
        default_symbols: Sequence[str],
        backfill_hours: int,
        budget_s: float,
        now: Callable[[], datetime] = utcnow,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.pool = pool
        self._default_symbols = list(default_symbols)
        self.backfill = timedelta(hours=backfill_hours)
        self.budget_s = budget_s
        self.now = now
        self.clock = clock

    def default_symbols(self) -> list[str]:
        return list(self._default_symbols)

    # -- what each source provides ------------------------------------------------

    def resolve(self, symbol: str | None) -> str:
        """Validate and normalize a symbol as callers write it; BadRequest if bad."""
        raise NotImplementedError

    def resume_point(self, conn, symbol: str) -> datetime | None:
        """Where the next page starts, from what is stored; None for a new symbol."""
        raise NotImplementedError

    def fetch_page(self, symbol: str, start: datetime, deadline: float) -> Sequence:
        raise NotImplementedError

    def store_page(self, conn, symbol: str, page: Sequence, stored_upto: datetime | None) -> int:
        """Store a page inside the caller's transaction; return rows new or changed.

        ``stored_upto`` is the newest key stored for the symbol before the page
        (None for a new symbol): rows after it cannot be duplicates.
        """
        raise NotImplementedError

    def page_upto(self, page: Sequence) -> datetime:
        """The newest key in a page (what stored_upto becomes once it is stored)."""
        raise NotImplementedError

    def is_last_page(self, page: Sequence) -> bool:
        raise NotImplementedError

    def next_start(self, page: Sequence) -> datetime:
        raise NotImplementedError

    def finish_symbol(self, symbol: str, deadline: float) -> int:
        """Fetch anything else a symbol needs once caught up; return rows stored."""
        return 0

    # -- the run --------------------------------------------------------------------

    def run(self, symbols: Sequence[str]) -> RunResult:
        """Catch each symbol up, within one time budget for the whole call.

        On failure the error carries what was stored before it (whole pages
        only), so the caller can tell the scheduler how far the run got.
        """
        deadline = self.clock() + self.budget_s
        result = RunResult()
        for symbol in symbols:
            try:
                self._run_symbol(symbol, deadline, result)
            except OutOfTime:
                log.info("%s %s: time budget spent", self.name, symbol)
                result.add(symbol, 0, complete=False)
            except RelayError as exc:
                exc.data.setdefault("processed", result.processed)
                exc.data.setdefault("symbols", result.symbols)
                raise
        return result

    def _run_symbol(self, symbol: str, deadline: float, result: RunResult) -> None:
        with db.connection(self.pool) as conn:
            start = stored_upto = self.resume_point(conn, symbol)
        if start is None:
            start = self.now() - self.backfill
        if self.clock() >= deadline:
            raise OutOfTime()
        # One page is fetched and parsed ahead while the previous one is stored, so
        # upstream HTTP and parsing overlap the COPY instead of waiting for it.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.name}-ahead") as ahead:
            page = self.fetch_page(symbol, start, deadline)
            while True:
                following = None if self.is_last_page(page) else self.next_start(page)
                stalled = following is not None and following <= start
                pending = None
                if following is not None and not stalled and self.clock() < deadline:
                    pending = ahead.submit(self.fetch_page, symbol, following, deadline)
                with storing(self.pool, self.upstream) as conn:
                    result.add(symbol, self.store_page(conn, symbol, page, stored_upto))
                if page:
                    upto = self.page_upto(page)
                    stored_upto = upto if stored_upto is None else max(stored_upto, upto)
                if following is None:
                    break
                if stalled:
                    # A full page that does not move forward would be fetched forever.
                    raise UpstreamError(
                        f"Bad Gateway: {self.upstream} page for {symbol} did not advance "
                        f"past {start.isoformat()}",
                        data={"symbol": symbol},
                    )
                if pending is None:
                    raise OutOfTime()
                page, start = pending.result(), following
        result.add(symbol, self.finish_symbol(symbol, deadline))


class CoinAPIRelayIn(PagedRelayIn):
    """Relay CoinAPI trade history into ``symbol_data``."""

    name = "coinapi"
    upstream = COINAPI
    concern = "trades"

    def __init__(
        self, pool: ConnectionPool, source: CoinAPISource, *, symbol_template: str, **kwargs
    ):
        super().__init__(pool, **kwargs)
        self.source = source
        self.symbol_template = symbol_template

    def resolve(self, symbol: str | None) -> str:
        return resolve_symbol(symbol, self.symbol_template)

    def resume_point(self, conn, symbol: str) -> datetime | None:
        # Trades at that very instant come again and are skipped by uuid.
        return trade_store.newest_time(conn, symbol)

    def fetch_page(self, symbol: str, start: datetime, deadline: float):
        return self.source.fetch_page(symbol, start, deadline=deadline)

    def store_page(self, conn, symbol: str, page, stored_upto) -> int:
        return trade_store.store_page(conn, symbol, page, stored_upto)

    def page_upto(self, page) -> datetime:
        return max(trade.time_exchange for trade in page)

    def is_last_page(self, page) -> bool:
        return len(page) < self.source.page_limit

    def next_start(self, page) -> datetime:
        return self.page_upto(page)


class BinanceRelayIn(PagedRelayIn):
    """Relay Binance 1-minute klines into ``binance_candle``, then the 24-hour ticker."""

    name = "binance"
    upstream = BINANCE
    concern = "candles"

    def __init__(self, pool: ConnectionPool, source: BinanceSource, **kwargs):
        super().__init__(pool, **kwargs)
        self.source = source

    def resolve(self, symbol: str | None) -> str:
        return binance.resolve_symbol(symbol)

    def resume_point(self, conn, symbol: str) -> datetime | None:
        # Start at the newest stored minute: it may have been still open.
        return candle_store.newest_open_time(conn, symbol)

    def fetch_page(self, symbol: str, start: datetime, deadline: float):
        return self.source.fetch_klines(symbol, start, deadline=deadline)

    def store_page(self, conn, symbol: str, page, stored_upto) -> int:
        # The newest stored minute comes again, maybe changed: it is upserted.
        return candle_store.store_klines(conn, symbol, page, self.now(), stored_upto)

    def page_upto(self, page) -> datetime:
        return max(kline.open_time for kline in page)

    def is_last_page(self, page) -> bool:
        return len(page) < self.source.page_limit

    def next_start(self, page) -> datetime:
        return max(kline.open_time for kline in page) + binance.MINUTE

    def finish_symbol(self, symbol: str, deadline: float) -> int:
        ticker = self.source.fetch_ticker(symbol, deadline=deadline)
        with storing(self.pool, self.upstream) as conn:
            candle_store.store_ticker(conn, ticker, self.now())
        return 0  # the ticker refreshes every run; only candles count as new rows


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


class CMCRelayIn:
    """Take one CoinMarketCap listings snapshot, then logos for coins that lack one.

    The snapshot (coins, quotes and today's daily row) is one transaction.
    Logos come after, each on its own, within what is left of the time
    budget: a logo that fails is logged and tried again next run, and never
    fails the snapshot.
    """

    name = "cmc"
    upstream = cmc.NAME
    concern = "coins"
    takes_symbols = False
    LOGOS_PER_RUN = 500

    def __init__(
        self,
        pool: ConnectionPool,
        source: CMCSource,
        *,
        budget_s: float,
        now: Callable[[], datetime] = utcnow,
        clock: Callable[[], float] = time.monotonic,
        uuidgen: Callable[[], uuid.UUID] = uuid.uuid4,
    ):
        self.pool = pool
        self.source = source
        self.budget_s = budget_s
        self.now = now
        self.clock = clock
        self.uuidgen = uuidgen

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
        stored = failed = 0
        with db.connection(self.pool) as conn:
            missing = coin_store.coins_without_logo(conn, self.LOGOS_PER_RUN)
        if not missing:
            return {"stored": 0, "failed": 0, "complete": True}
        try:
            urls = self.source.logo_urls(missing, deadline=deadline)
        except UpstreamError as exc:
            log.warning("cmc: logo info failed: %s", exc.message)
            return {"stored": 0, "failed": len(missing), "complete": False}
        for cmc_id, url in urls.items():
            if self.clock() >= deadline:
                break
            with db.connection(self.pool) as conn:
                logo_id = coin_store.logo_for_url(conn, url)
            if logo_id is None:
                logo = self.source.download_logo(url, deadline=deadline)
                if logo is None:
                    failed += 1
                    continue
                with storing(self.pool, self.upstream) as conn:
                    logo_id = coin_store.store_logo(conn, logo)
            with db.connection(self.pool) as conn:
                coin_store.set_logo(conn, cmc_id, logo_id)
            stored += 1
        # complete: every coin that lacked a logo has one now
        return {"stored": stored, "failed": failed, "complete": stored == len(missing)}
