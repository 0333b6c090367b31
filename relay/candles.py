"""1-minute candles and latest tickers of any exchange: the SQL every market source shares.

Each exchange keeps its own tables (declared in its package as a ``Market``); the
statements here are composed from those identifiers once, never from a request.
Minutes are stored through COPY (their hours and days rolled up in the same
transaction, relay.rollups), and read back (latest price, price at a moment) by the
primary key ``(symbol, open_time)``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

import psycopg
from psycopg import sql

from relay import db, partitions, rollups
from relay.errors import BadRequest, UpstreamError
from relay.ingest import PagedRelayIn, storing
from relay.notify import announce
from relay.sources.http import OutOfTime
from relay.sources.minutes import Minutes
from relay.sources.source import Market

CONCERN = "candles"


class Statements(NamedTuple):
    """Each rendered once (db.rendered)."""

    newest: bytes
    oldest: bytes
    symbols: bytes
    latest_price: bytes
    price_at: bytes


@functools.cache
def statements(market: Market) -> Statements:
    ids = {
        "candles": sql.Identifier(market.candles),
        "ticker": sql.Identifier(market.ticker),
        "ticker_time": sql.Identifier(market.ticker_time),
    }
    composed = Statements(
        newest=sql.SQL("SELECT max(open_time) FROM {candles} WHERE symbol = %(symbol)s").format(
            **ids
        ),
        oldest=sql.SQL("SELECT min(open_time) FROM {candles} WHERE symbol = %(symbol)s").format(
            **ids
        ),
        # Every symbol with candles, by a loose index scan of the primary key: one
        # probe per symbol, so its cost follows the symbol count, not the rows.
        symbols=sql.SQL(
            """
            WITH RECURSIVE held AS (
                (SELECT symbol FROM {candles} ORDER BY symbol LIMIT 1)
                UNION ALL
                SELECT (SELECT c.symbol FROM {candles} AS c
                        WHERE c.symbol > held.symbol ORDER BY c.symbol LIMIT 1)
                FROM held WHERE held.symbol IS NOT NULL
            )
            SELECT symbol FROM held WHERE symbol IS NOT NULL
            """
        ).format(**ids),
        # The freshest price held: the ticker's last price, or the newest candle's
        # close (as of when it was stored, for a minute that was still open) if newer.
        latest_price=sql.SQL(
            """
            SELECT price, as_of FROM (
                SELECT last_price AS price, {ticker_time} AS as_of
                FROM {ticker} WHERE symbol = %(symbol)s
                UNION ALL
                (SELECT close, least(close_time, fetched_at)
                 FROM {candles} WHERE symbol = %(symbol)s
                 ORDER BY open_time DESC LIMIT 1)
            ) AS latest
            ORDER BY as_of DESC
            LIMIT 1
            """
        ).format(**ids),
        # The close of the last 1-minute candle that opened at or before a moment.
        price_at=sql.SQL(
            """
            SELECT close, open_time FROM {candles}
            WHERE symbol = %(symbol)s AND open_time <= %(at)s
            ORDER BY open_time DESC
            LIMIT 1
            """
        ).format(**ids),
    )
    return Statements(*map(db.rendered, composed))


def newest_open_time(conn: psycopg.Connection, market: Market, symbol: str) -> datetime | None:
    return conn.execute(statements(market).newest, {"symbol": symbol}).fetchone()[0]


def oldest_open_time(conn: psycopg.Connection, market: Market, symbol: str) -> datetime | None:
    return conn.execute(statements(market).oldest, {"symbol": symbol}).fetchone()[0]


def symbols(conn: psycopg.Connection, market: Market) -> list[str]:
    return [row[0] for row in conn.execute(statements(market).symbols)]


def latest_price(
    conn: psycopg.Connection, market: Market, symbol: str
) -> tuple[Decimal, datetime] | None:
    return conn.execute(statements(market).latest_price, {"symbol": symbol}).fetchone()


def price_at(
    conn: psycopg.Connection, market: Market, symbol: str, at: datetime
) -> tuple[Decimal, datetime] | None:
    return conn.execute(statements(market).price_at, {"symbol": symbol, "at": at}).fetchone()


# -- storing minutes ---------------------------------------------------------------------


class Writes(NamedTuple):
    """Each rendered once (db.rendered)."""

    create_stage: bytes
    clear_stage: bytes
    copy_direct: bytes
    copy_stage: bytes
    merge: bytes


@functools.cache
def writes(market: Market, columns: tuple[str, ...]) -> Writes:
    """Statements storing rows of ``columns`` (``open_time`` first), then symbol, fetched_at."""
    table = sql.Identifier(market.candles)
    stage = sql.Identifier(f"{market.candles}_stage")
    every = sql.SQL(", ").join(map(sql.Identifier, (*columns, "symbol", "fetched_at")))
    values = [c for c in columns if c != "open_time"]
    stored = sql.SQL(", ").join(sql.Identifier("c", c) for c in values)
    sent = sql.SQL(", ").join(sql.Identifier("excluded", c) for c in values)
    composed = Writes(
        create_stage=sql.SQL(
            "CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table}) ON COMMIT DELETE ROWS"
        ).format(stage=stage, table=table),
        # Emptied before each page: the transaction may merge several pages one by one.
        clear_stage=sql.SQL("TRUNCATE {stage}").format(stage=stage),
        # Minutes after the newest one stored cannot be there yet: straight in, no merge.
        copy_direct=sql.SQL("COPY {table} ({every}) FROM STDIN").format(table=table, every=every),
        copy_stage=sql.SQL("COPY {stage} ({every}) FROM STDIN").format(stage=stage, every=every),
        # A minute seen again is rewritten only when the exchange changed it (the open
        # minute, or a late correction), so rowcount counts rows new or changed.
        merge=sql.SQL(
            """
            INSERT INTO {table} AS c ({every})
            SELECT DISTINCT ON (open_time) {every} FROM {stage} ORDER BY open_time
            ON CONFLICT (symbol, open_time) DO UPDATE SET {assign}, fetched_at = excluded.fetched_at
            WHERE ({stored}) IS DISTINCT FROM ({sent})
            """
        ).format(
            table=table,
            stage=stage,
            every=every,
            assign=sql.SQL(", ").join(
                sql.SQL("{} = {}").format(sql.Identifier(c), sql.Identifier("excluded", c))
                for c in values
            ),
            stored=stored,
            sent=sent,
        ),
    )
    return Writes(*map(db.rendered, composed))


def opened(rows: Minutes | Sequence[NamedTuple]) -> list[datetime]:
    """Every open time in a page."""
    if isinstance(rows, Minutes):
        return rows.times()
    return [row[0] for row in rows]


def span(rows: Minutes | Sequence[NamedTuple]) -> tuple[datetime, datetime]:
    """The first and last open time in a non-empty page."""
    if isinstance(rows, Minutes):
        return rows.since, rows.upto
    times = [row[0] for row in rows]
    return min(times), max(times)


def store_minutes(
    conn: psycopg.Connection,
    market: Market,
    symbol: str,
    rows: Minutes | Sequence[NamedTuple],
    fetched_at: datetime,
    stored_upto: datetime | None = None,
) -> int:
    """Store a page of 1-minute rows through COPY; return how many were new or changed.

    ``rows`` are Minutes already rendered, or NamedTuples whose fields are the table's
    columns, ``open_time`` first. ``stored_upto`` is the newest minute stored for the
    symbol before this page (None: nothing stored). Minutes after it are COPYed
    straight into the table; the rest (the minute that may have been open, a late
    correction) go through a staging table and an upsert that rewrites only what
    changed (db.copy_new_else_merge). One row a minute: the last one sent.

    Hours and days follow in the same transaction: when every minute went straight
    in, the page's fold (made on the fetching thread, or here) is added to them;
    otherwise the buckets the page touches are aggregated again from the minutes.
    """
    page = rows if isinstance(rows, Minutes) else Minutes.of(rows)
    if not page:
        return 0
    statements = writes(market, page.columns)
    tail = f"\t{db.copy_text(symbol)}\t{fetched_at.isoformat()}\n"

    straight: list[bool] = []

    def copy_new(cur: psycopg.Cursor, new: list[str]) -> None:
        db.copy_joined(cur, statements.copy_direct, new, tail)
        straight.append(True)

    def merge(cur: psycopg.Cursor, seen: list[str]) -> int:
        cur.execute(statements.create_stage)
        cur.execute(statements.clear_stage)
        db.copy_joined(cur, statements.copy_stage, seen, tail)
        cur.execute(statements.merge)
        return cur.rowcount

    keys, lines = page.unique()
    after = None if stored_upto is None else page.key(stored_upto)
    new, seen = db.split_after(keys, lines, after)
    stored = db.copy_new_else_merge(conn, new, seen, copy_new, merge)
    if straight and not seen:
        if page.folded is None:
            page.folded = rollups.fold(page)
        rollups.append(conn, market, symbol, page.folded)
    elif stored:
        rollups.refresh(conn, market, symbol, *span(page))
    if stored:
        announce(conn, CONCERN)
    return stored


class CandleRelayIn(PagedRelayIn):
    """An exchange's relay-in: 1-minute candles onward from the newest stored minute (it
    may have been open, so it is asked for again and updated in place), then its ticker.

    Subclasses say how a page is fetched and where the next starts, and store the ticker.
    """

    market: Market
    concern = CONCERN
    # Pages of at most 1,000 minutes, about 280 kB each once folded (620 kB as parsed),
    # so five ready per symbol at work hold less than three unfolded did; a store slower
    # than the upstream takes them all in one transaction: one COPY, one addition to the
    # hours and days, one commit.
    PAGES_AHEAD = 5
    # Tickers of this many symbols in one request once their candles are in; 1: one each,
    # right after each symbol's candles.
    ticker_batch = 1

    def resolve(self, symbol: str | None) -> str:
        return self.market.resolve(symbol)

    # -- whole-market symbol sets ----------------------------------------------------------

    LISTING_TTL_S = 3600.0  # the exchange's symbol list is asked for at most hourly
    MAX_LISTED = 5000  # more than any exchange lists; a longer list is not a market
    LISTING_BUDGET_S = 5.0  # the listing is part of the call: it leaves the run its budget
    _listing: tuple[float, list[tuple[str, str]]] | None = None

    def __init__(self, *args, retain: timedelta | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._listing_lock = threading.Lock()  # one listing fetch at a time, per exchange
        self.retain = retain  # minutes older than this are dropped (a month at a time)
        self.partitions = partitions.Partitions(self.pool, self.market.candles)

    @classmethod
    def wired(cls, wiring, source, **extra):
        return super().wired(wiring, source, retain=wiring.retain_candles_1m, **extra)

    def prepare(self, page) -> None:
        rows = self.rows(page)
        if len(rows):
            self.partitions.ensure(*span(rows), each=lambda: opened(rows))

    def expand(self, requested: Sequence[str]) -> list[str]:
        """Symbols as asked: ``*`` is every symbol the exchange lists as trading, ``*USDT``
        those quoted in USDT; any other is one symbol (unknown ones are refused by the
        exchange, 400). In the exchange's order, each once."""
        chosen: list[str] = []
        for text in requested:
            wanted = text.strip().upper()
            if not wanted.startswith("*"):
                chosen.append(self.resolve(text))
                continue
            quote = wanted[1:].lstrip("-")
            if quote and not quote.isalnum():
                raise BadRequest("Bad Request: Invalid Symbol", data={"symbol": text[:100]})
            chosen += [symbol for symbol, q in self.listed() if not quote or q == quote]
        return list(dict.fromkeys(chosen))

    def listed(self) -> list[tuple[str, str]]:
        """(symbol, quote currency) of every symbol trading now, cached for LISTING_TTL_S."""
        with self._listing_lock:
            cached = self._listing
            if cached is None or self.clock() - cached[0] >= self.LISTING_TTL_S:
                deadline = self.clock() + min(self.LISTING_BUDGET_S, self.budget_s)
                listing = self.source.listed(deadline=deadline)
                if len(listing) > self.MAX_LISTED:
                    raise UpstreamError(
                        f"Bad Gateway: {self.upstream} lists {len(listing)} symbols, "
                        f"more than {self.MAX_LISTED}"
                    )
                cached = self._listing = (self.clock(), listing)
            return cached[1]

    def forget_listed(self, symbol: str) -> bool:
        with self._listing_lock:
            cached = self._listing
            if cached is None or all(listed != symbol for listed, _ in cached[1]):
                return False
            # Expired, not forgotten: the next call lists afresh, while this run still
            # knows every other symbol the stale listing offered.
            self._listing = (float("-inf"), cached[1])
            return True

    def resume_point(self, conn, symbol: str) -> datetime | None:
        return newest_open_time(conn, self.market, symbol)

    def rows(self, page) -> Sequence[NamedTuple]:
        """The candles in a page (a page is its list of candles unless a source says so)."""
        return page

    def digest(self, page) -> None:
        rows = self.rows(page)
        if isinstance(rows, Minutes) and rows:
            rows.folded = rollups.fold(rows)
            rows.values = None  # folded: the page need not hold its fields twice

    def store_page(self, conn, symbol: str, page, stored_upto: datetime | None) -> int:
        rows = self.rows(page)
        return store_minutes(conn, self.market, symbol, rows, self.now(), stored_upto)

    def store_pages(self, conn, symbol: str, pages, stored_upto: datetime | None) -> int:
        """Pages in time order go in as one: one COPY, one addition to hours and days."""
        rows = [rows for rows in map(self.rows, pages) if rows]  # empty ones store nothing
        if len(rows) > 1 and all(isinstance(r, Minutes) and r.folded for r in rows):
            chained = Minutes.chain(rows)
            if chained is not None:
                chained.folded = rollups.joined([r.folded for r in rows])
                return store_minutes(conn, self.market, symbol, chained, self.now(), stored_upto)
        return super().store_pages(conn, symbol, pages, stored_upto)

    def page_upto(self, page) -> datetime:
        rows = self.rows(page)
        return rows.upto if isinstance(rows, Minutes) else max(row.open_time for row in rows)

    def store_ticker(self, conn: psycopg.Connection, ticker) -> None:
        raise NotImplementedError

    def finish_symbol(self, symbol: str, deadline: float) -> int:
        if self.ticker_batch == 1:
            ticker = self.source.fetch_ticker(symbol, deadline=deadline)
            with storing(self.pool, self.upstream) as conn:
                self.store_ticker(conn, ticker)
        return 0  # the ticker refreshes every run; only candles count as new rows

    def finish_run(self, caught_up: Sequence[str], deadline: float, result) -> None:
        """Fetch the tickers of the symbols whose candles caught up, a batch a request;
        then drop the months of minutes retention no longer keeps."""
        self._tickers(caught_up, deadline, result)
        if self.retain is not None:
            with db.connection(self.pool) as conn:
                dropped = partitions.prune(conn, self.market.candles, self.retain, self.now())
                if dropped:
                    announce(conn, CONCERN)
            if dropped:
                self.partitions.forget()
                result.details["dropped"] = dropped

    def _tickers(self, caught_up: Sequence[str], deadline: float, result) -> None:
        if self.ticker_batch == 1:
            return
        for at in range(0, len(caught_up), self.ticker_batch):
            batch = list(caught_up[at : at + self.ticker_batch])
            try:
                tickers = self.source.fetch_tickers(batch, deadline=deadline)
            except OutOfTime:
                for symbol in caught_up[at:]:  # their prices wait for the next call
                    result.add(symbol, 0, complete=False)
                return
            with storing(self.pool, self.upstream) as conn:
                for ticker in tickers:
                    self.store_ticker(conn, ticker)
