"""Relay-in runs: pull pages from an upstream and store each one whole.

A run resumes from what is stored, commits page by page, and stops early
once its time budget is spent, saying so (``complete: false``) so the
next call continues where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from relay import db
from relay.errors import BadRequest, RelayError, UpstreamError
from relay.sources.http import OutOfTime

log = logging.getLogger(__name__)
_LAST = object()  # the walk of a symbol's pages reached the upstream's newest


def _ends(item) -> bool:
    """Whether a walk's item is its end (the newest reached, or why it stopped)."""
    return item is _LAST or isinstance(item, BaseException)


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
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def add(self, symbol: str, processed: int, *, complete: bool = True) -> None:
        """Count ``processed`` more new rows for ``symbol`` (symbols run concurrently)."""
        with self._lock:
            self.processed += processed
            self.complete = self.complete and complete
            entry = self.symbols.setdefault(symbol, {"processed": 0, "complete": True})
            entry["processed"] += processed
            entry["complete"] = entry["complete"] and complete

    def skip(self, symbol: str, reason: str) -> None:
        """Say why ``symbol`` was left behind (it counts as not caught up)."""
        self.add(symbol, 0, complete=False)
        with self._lock:
            self.symbols[symbol]["error"] = reason

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
    retain: timedelta | None = None  # rows older than this are dropped by retention
    PAGES_AHEAD = 3  # pages fetched ahead of the store at most (memory: per symbol at work)

    def __init__(
        self,
        pool: ConnectionPool,
        source: Any,
        *,
        default_symbols: Sequence[str],
        backfill_hours: int,
        budget_s: float,
        now: Callable[[], datetime] = utcnow,
        clock: Callable[[], float] = time.monotonic,
        concurrency: int = 1,
    ):
        self.pool = pool
        self.source = source  # the upstream client this relay-in fetches pages with
        self.concurrency = concurrency
        self._default_symbols = list(default_symbols)
        self.backfill = timedelta(hours=backfill_hours)
        self.budget_s = budget_s
        self.now = now
        self.clock = clock

    @classmethod
    def wired(cls, wiring, source: Any, *, symbols: Sequence[str], backfill_hours: int, **extra):
        """Build from the app's wiring (a Wiring): its pool, budget and clocks."""
        return cls(
            wiring.pool,
            source,
            default_symbols=symbols,
            backfill_hours=backfill_hours,
            budget_s=wiring.budget_s,
            now=wiring.now,
            clock=wiring.clock,
            concurrency=wiring.concurrency,
            **extra,
        )

    def default_symbols(self) -> list[str]:
        return list(self._default_symbols)

    def expand(self, requested: Sequence[str]) -> list[str]:
        """The symbols a call asks for, resolved, each once (sources may add sets: ``*``)."""
        return list(dict.fromkeys(self.resolve(symbol) for symbol in requested))

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

    def store_pages(
        self, conn, symbol: str, pages: Sequence[Sequence], stored_upto: datetime | None
    ) -> int:
        """Store pages in order inside the caller's transaction (a source may store them as
        one); return rows new or changed."""
        stored = 0
        for page in pages:
            stored += self.store_page(conn, symbol, page, stored_upto)
            stored_upto = self.newest(stored_upto, [page])
        return stored

    def newest(self, stored_upto: datetime | None, pages: Sequence[Sequence]) -> datetime | None:
        """What stored_upto becomes once ``pages`` are stored."""
        held = [] if stored_upto is None else [stored_upto]
        return max(held + [self.page_upto(page) for page in pages if page], default=None)

    def digest(self, page: Sequence) -> None:
        """Work a page needs before it is stored that needs no database, done on the thread
        that fetched it, beside the store (relay.candles folds hours and days)."""

    def page_upto(self, page: Sequence) -> datetime:
        """The newest key in a page (what stored_upto becomes once it is stored)."""
        raise NotImplementedError

    def is_last_page(self, page: Sequence) -> bool:
        raise NotImplementedError

    def next_start(self, page: Sequence) -> datetime:
        raise NotImplementedError

    def prepare(self, page: Sequence) -> None:
        """Make ready what storing ``page`` needs, outside its transaction (partitions)."""

    def finish_symbol(self, symbol: str, deadline: float) -> int:
        """Fetch anything else a symbol needs once caught up; return rows stored."""
        return 0

    # -- the run --------------------------------------------------------------------

    def run(self, symbols: Sequence[str]) -> RunResult:
        """Catch the symbols up, up to ``concurrency`` at once, within one time budget.

        The symbols furthest behind start first, so when the budget ends before all are
        caught up, the next call begins with those that waited longest and none starves.
        Each symbol's pages still go in order, each stored whole. On failure the error
        carries what was stored before it (whole pages only), and symbols not yet started
        are left for the next call.
        """
        deadline = self.clock() + self.budget_s
        result = RunResult()
        stop = threading.Event()
        failures: list[BaseException] = []
        # Read once, for the order and the start: the run holds each symbol's lock, so no
        # other run moves a resume point meanwhile.
        points = self.resume_points(symbols)
        floor = datetime.min.replace(tzinfo=UTC)
        ordered = sorted(symbols, key=lambda symbol: points[symbol] or floor)

        def one(symbol: str) -> None:
            if stop.is_set():
                return
            if self.clock() >= deadline:  # no query for a symbol that cannot start
                result.add(symbol, 0, complete=False)
                return
            try:
                self._run_symbol(symbol, points[symbol], deadline, result)
            except OutOfTime:
                log.info("%s %s: time budget spent", self.name, symbol)
                result.add(symbol, 0, complete=False)
            except BadRequest as exc:
                if not self.forget_listed(symbol):
                    stop.set()
                    failures.append(exc)
                    return
                # The exchange's own listing said it trades: the listing is stale, not
                # the call. The other symbols go on; the next call lists afresh.
                log.warning("%s %s: listed but refused: %s", self.name, symbol, exc.message)
                result.skip(symbol, f"{self.upstream} listed it but refused it: {exc.message}")
            except BaseException as exc:
                stop.set()
                failures.append(exc)

        workers = max(1, min(self.concurrency, len(ordered)))
        if workers == 1:
            for symbol in ordered:
                one(symbol)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix=f"{self.name}-symbol") as pool:
                list(pool.map(one, ordered))
        if not failures:
            caught_up = [s for s in ordered if result.symbols.get(s, {}).get("complete")]
            try:
                self.finish_run(caught_up, deadline, result)
            except BaseException as exc:
                failures.append(exc)
        if failures:
            exc = failures[0]
            if isinstance(exc, RelayError):
                exc.data.setdefault("processed", result.processed)
                exc.data.setdefault("symbols", result.symbols)
            raise exc
        return result

    def forget_listed(self, symbol: str) -> bool:
        """The upstream refused ``symbol``: if the cached listing offered it, drop the listing
        and say True (the run goes on without it); False when no listing offered it (an
        unknown symbol the caller named: the run stops with the upstream's 400)."""
        return False

    def finish_run(self, caught_up: Sequence[str], deadline: float, result: RunResult) -> None:
        """Fetch what the symbols that caught up need together (tickers in batches)."""

    def resume_points(self, symbols: Sequence[str]) -> dict[str, datetime | None]:
        """Where each symbol resumes, read on one connection."""
        with db.connection(self.pool) as conn:
            return {symbol: self.resume_point(conn, symbol) for symbol in symbols}

    def _run_symbol(
        self, symbol: str, resume: datetime | None, deadline: float, result: RunResult
    ) -> None:
        start = stored_upto = resume
        if start is None:
            start = self.now() - self.backfill
        if self.retain is not None:
            # What retention drops at the run's end is not fetched, even where a symbol
            # resumes from before it (a Coinbase product quiet for longer than retention).
            start = max(start, self.now() - self.retain)
        if self.clock() >= deadline:
            raise OutOfTime()
        # Pages are fetched and parsed in order on a helper thread, up to PAGES_AHEAD ahead
        # of the store, so upstream HTTP and parsing overlap the COPY; whatever pages are
        # ready when the store is free go in one transaction (each still whole), so a store
        # slower than the upstream pays its per-transaction costs less often.
        ready: queue.Queue = queue.Queue(maxsize=self.PAGES_AHEAD)
        quit = threading.Event()

        def hand(item) -> None:
            while not quit.is_set():
                with contextlib.suppress(queue.Full):
                    ready.put(item, timeout=0.05)
                    return

        def walk() -> None:
            at = start
            try:
                while not quit.is_set():
                    page = self.fetch_page(symbol, at, deadline)
                    self.digest(page)
                    following = None if self.is_last_page(page) else self.next_start(page)
                    hand(page)
                    if following is None:
                        return hand(_LAST)
                    if following <= at:
                        # A full page that does not move forward would be fetched forever.
                        return hand(
                            UpstreamError(
                                f"Bad Gateway: {self.upstream} page for {symbol} did not "
                                f"advance past {at.isoformat()}",
                                data={"symbol": symbol},
                            )
                        )
                    if self.clock() >= deadline:
                        return hand(OutOfTime())
                    at = following
            except BaseException as exc:
                hand(exc)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.name}-ahead") as ahead:
            ahead.submit(walk)
            try:
                while True:
                    items = [ready.get()]
                    while len(items) < self.PAGES_AHEAD and not _ends(items[-1]):
                        try:
                            items.append(ready.get_nowait())
                        except queue.Empty:
                            break
                    pages = [item for item in items if not _ends(item)]
                    if pages:
                        for page in pages:
                            self.prepare(page)
                        with storing(self.pool, self.upstream) as conn:
                            stored = self.store_pages(conn, symbol, pages, stored_upto)
                        stored_upto = self.newest(stored_upto, pages)
                        result.add(symbol, stored)  # counted once committed
                    if items[-1] is _LAST:
                        break
                    if isinstance(items[-1], BaseException):
                        raise items[-1]
            finally:
                quit.set()
        result.add(symbol, self.finish_symbol(symbol, deadline))
