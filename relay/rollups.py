"""Hourly and daily candles stored beside the 1-minute rows, so a read costs what it returns.

An exchange's 1-minute table ``{candles}`` has two rollups, ``{candles}_1h`` and
``{candles}_1d``, kept by the ingest in the same transaction as the minutes they come
from: every bucket a stored page touches is aggregated again from the level below, so
the open bucket and a corrected minute are always exact. A rollup row holds what the
exchange's rule needs to combine buckets further without the minutes: the open of the
first minute that traded, the high and low over the minutes that traded (null when none
did), the last minute's close and the summed volume.

An interval is answered from the coarsest level that divides it (``1d`` and ``1w`` and
``1M`` from days, ``1h`` to ``12h`` from hours, the rest from minutes). A range that
ends inside a rollup bucket with minutes after its end takes that bucket's part from
the minutes, so every answer equals aggregating the minutes themselves.

Minutes newer than every minute stored (what an ingest mostly writes) need no reading
back: their hours and days are folded in Python from the page as it was parsed
(``fold``, on the thread that fetched it) and added to the stored buckets by one upsert
(``append``), which the rule allows because every stored minute of those buckets is
older. Anything else (a minute seen again, a correction) re-aggregates its buckets from
the level below (``refresh``).
"""

from __future__ import annotations

import bisect
import decimal
import functools
import itertools
import operator
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import compress
from typing import NamedTuple

import psycopg
from psycopg import sql

from relay import db
from relay.sources.minutes import Minutes
from relay.sources.source import Market

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# What each level is, coarsest first; None is the 1-minute table itself.
LEVELS: tuple[tuple[str | None, timedelta], ...] = (
    ("1d", DAY),
    ("1h", HOUR),
    (None, MINUTE),
)


def table(market: Market, level: str | None) -> str:
    return market.candles if level is None else f"{market.candles}_{level}"


# The aggregation that is the exchange's rule, over rows shaped (at, traded_open,
# traded_high, traded_low, close, volume) in any level. Both ordered aggregates take one
# ascending order, so one sort feeds them.
_COMBINE = """
    (array_agg(traded_open ORDER BY at) FILTER (WHERE traded_open IS NOT NULL))[1],
    max(traded_high), min(traded_low), (array_agg(close ORDER BY at))[count(*)], sum(volume)
"""
# A level's rows in that shape: a minute that did not trade (volume 0) adds no open,
# high or low, only its close and its volume.
_SHAPE = {
    None: """
        SELECT open_time AS at,
               CASE WHEN volume > 0 THEN open END AS traded_open,
               CASE WHEN volume > 0 THEN high END AS traded_high,
               CASE WHEN volume > 0 THEN low END AS traded_low,
               close, volume
        FROM {table} WHERE symbol = %(symbol)s AND open_time >= {since} AND open_time < {until}
    """,
    "rollup": """
        SELECT bucket AS at, traded_open, traded_high, traded_low, close, volume
        FROM {table} WHERE symbol = %(symbol)s AND bucket >= {since} AND bucket < {until}
    """,
}
# Buckets of a fixed width align to the epoch (so 1d is a UTC day, as the exchanges
# align theirs), weeks to a Monday; months are calendar months in UTC.
BUCKET = {
    "bin": "date_bin(%(width)s, at, %(origin)s)",
    "month": "date_trunc('month', at, 'UTC')",
}


def _shape(market: Market, level: str | None, since: str, until: str) -> sql.Composed:
    text = _SHAPE[None if level is None else "rollup"]
    return sql.SQL(text).format(
        table=sql.Identifier(table(market, level)),
        since=sql.Placeholder(since),
        until=sql.Placeholder(until),
    )


class Statements(NamedTuple):
    """Each rendered once (db.rendered)."""

    refresh: dict[str, bytes]  # level -> re-aggregate its buckets in a range
    append: bytes  # hours and days of minutes newer than all stored, added in
    read: dict[tuple[str | None, str], bytes]  # (level, bucket kind) -> candles


# Adding buckets of later minutes to stored ones, by the rule: the stored open stays
# unless none traded, high and low widen (the later value wins a tie, as max() over
# the minutes in order gives it), the close is the later one's, volumes add up.
_APPEND = """
    INSERT INTO {rollup} AS r
        (symbol, bucket, traded_open, traded_high, traded_low, close, volume)
    SELECT %(symbol)s, * FROM unnest(
        {at}::timestamptz[], {open}::numeric[], {high}::numeric[], {low}::numeric[],
        {close}::numeric[], {volume}::numeric[])
    ON CONFLICT (symbol, bucket) DO UPDATE SET
        traded_open = coalesce(r.traded_open, excluded.traded_open),
        traded_high = greatest(excluded.traded_high, r.traded_high),
        traded_low = least(excluded.traded_low, r.traded_low),
        close = excluded.close, volume = r.volume + excluded.volume
"""


@functools.cache
def statements(market: Market) -> Statements:
    refresh = {}
    below: str | None = None
    for level, width in reversed(LEVELS[:-1]):  # hours from minutes, then days from hours
        refresh[level] = sql.SQL(
            """
            INSERT INTO {rollup} AS r
                (symbol, bucket, traded_open, traded_high, traded_low, close, volume)
            SELECT %(symbol)s, date_bin({width}, at, {epoch}) AS bucket, {combine}
            FROM ({rows}) AS rows
            GROUP BY bucket
            ON CONFLICT (symbol, bucket) DO UPDATE SET
                traded_open = excluded.traded_open, traded_high = excluded.traded_high,
                traded_low = excluded.traded_low, close = excluded.close,
                volume = excluded.volume
            """
        ).format(
            rollup=sql.Identifier(table(market, level)),
            width=sql.Literal(width),
            epoch=sql.Literal(EPOCH),
            combine=sql.SQL(_COMBINE),
            rows=_shape(market, below, "first", "last"),
        )
        below = level
    appends = []
    for level, _ in LEVELS[:-1]:
        fields = {f: sql.Placeholder(f"{level}_{f}") for f in Bucket._fields}
        appends.append(
            sql.SQL(_APPEND).format(rollup=sql.Identifier(table(market, level)), **fields)
        )
    # One statement (and one round trip) for both levels: days in the CTE, hours after.
    append = sql.SQL("WITH days AS ({}) {}").format(*appends)
    read = {}
    for level, _ in LEVELS:
        for kind, bucket in BUCKET.items():
            rows = _shape(market, None, "cut" if level else "start", "end")
            if level is not None:
                rows = sql.SQL("{} UNION ALL {}").format(
                    _shape(market, level, "start", "cut"), rows
                )
            read[level, kind] = sql.SQL(
                """
                SELECT bucket, coalesce(traded_open, close), coalesce(traded_high, close),
                       coalesce(traded_low, close), close, volume
                FROM (
                    SELECT {bucket} AS bucket, {combine}
                    FROM ({rows}) AS rows
                    GROUP BY 1
                ) AS buckets (bucket, traded_open, traded_high, traded_low, close, volume)
                ORDER BY bucket
                """
            ).format(bucket=sql.SQL(bucket), combine=sql.SQL(_COMBINE), rows=rows)
    return Statements(
        {level: db.rendered(statement) for level, statement in refresh.items()},
        db.rendered(append),
        {key: db.rendered(statement) for key, statement in read.items()},
    )


def floor(when: datetime, width: timedelta) -> datetime:
    return EPOCH + ((when - EPOCH) // width) * width


def refresh(
    conn: psycopg.Connection, market: Market, symbol: str, first: datetime, last: datetime
) -> None:
    """Aggregate again every hour and day holding a minute in [first, last] (inside the
    caller's transaction, after those minutes were stored)."""
    for level, width in reversed(LEVELS[:-1]):
        span = {"first": floor(first, width), "last": floor(last, width) + width}
        conn.execute(statements(market).refresh[level], {"symbol": symbol, **span})


class Bucket(NamedTuple):
    """A bucket of any level as the rule combines it (traded values None: none traded)."""

    at: datetime
    open: Decimal | None
    high: Decimal | None
    low: Decimal | None
    close: Decimal
    volume: Decimal


# Sums of volumes keep every digit: precision bounded only by the digits summed.
_EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)
_VALUES = ("open", "high", "low", "close", "volume")


def _combine(at: datetime, parts: Iterable[Bucket]) -> Bucket:
    """Parts in time order (minutes, or buckets of a finer level) as one bucket."""
    opened = high = low = close = None
    volume = Decimal(0)
    for part in parts:
        if part.open is not None:
            if opened is None:
                opened = part.open
            # ties go to the later part, as PostgreSQL's max() and min() in order
            if high is None or part.high >= high:
                high = part.high
            if low is None or part.low <= low:
                low = part.low
        close = part.close
        volume = _EXACT.add(volume, part.volume)
    return Bucket(at, opened, high, low, close, volume)


def _group(parts: Iterable[Bucket], width: timedelta) -> list[Bucket]:
    return [
        _combine(at, group)
        for at, group in itertools.groupby(parts, key=lambda part: floor(part.at, width))
    ]


def fold(page: Minutes) -> tuple[list[Bucket], list[Bucket]]:
    """The hours and days of a page's minutes (each minute once, the last one sent), by
    the rule: a minute with no volume adds only its close and its volume.

    Runs on the thread that fetched the page, beside the store, so little is done per
    minute in Python: floats decide which minutes traded and which high and low are
    largest (they round monotonically, and within relay's |exponent| < 60 keep every
    sign), and only ties of unequal text, the bucket's ends and its volumes are read as
    Decimals.
    """
    keys, columns = page.fields(_VALUES)
    if not all(map(operator.lt, keys, itertools.islice(keys, 1, None))):
        order = sorted(range(len(keys)), key=keys.__getitem__)
        keys = [keys[at] for at in order]
        columns = [[column[at] for at in order] for column in columns]
    opens, highs, lows, closes, volumes = columns
    if page.unit is None:
        hour_of, hour_key = (lambda key: (key - EPOCH) // HOUR), (lambda hour: EPOCH + hour * HOUR)
    else:
        per = HOUR // page.unit
        hour_of, hour_key = (lambda key: key // per), (lambda hour: hour * per)
    traded = list(map(operator.gt, map(float, volumes), itertools.repeat(0.0)))
    high_floats, low_floats = list(map(float, highs)), list(map(float, lows))
    hours = []
    start = 0
    with decimal.localcontext(_EXACT):
        while start < len(keys):  # an hour at a time: its end found by bisection
            hour = hour_of(keys[start])
            end = bisect.bisect_left(keys, hour_key(hour + 1), start)
            moved = traded[start:end]
            opened = high = low = None
            if any(moved):
                opened = Decimal(opens[start + moved.index(True)])
                high = _extreme(highs[start:end], high_floats[start:end], moved, max)
                low = _extreme(lows[start:end], low_floats[start:end], moved, min)
            volume = sum(map(Decimal, volumes[start:end]))
            close = Decimal(closes[end - 1])
            hours.append(Bucket(EPOCH + hour * HOUR, opened, high, low, close, volume))
            start = end
    return hours, _group(hours, DAY)


def _extreme(texts: list[str], floats: list[float], moved: list[bool], pick: Callable) -> Decimal:
    """The largest (pick=max) or smallest (min) of the numbers of minutes that traded; of
    equal numbers the later one, as PostgreSQL's max() and min() over rows in order give.
    ``floats`` are the texts as floats: only texts whose float ties are read exactly."""
    if not all(moved):
        texts, floats = list(compress(texts, moved)), list(compress(floats, moved))
    best = pick(floats)
    tied = list(compress(texts, map(operator.eq, floats, itertools.repeat(best))))
    if len(set(tied)) == 1:
        return Decimal(tied[-1])
    return pick(map(Decimal, reversed(tied)))


def joined(folds: Sequence[tuple[list[Bucket], list[Bucket]]]) -> tuple[list[Bucket], list[Bucket]]:
    """The folds of pages in time order (no minute in two of them) as one page's fold."""
    hours = _group(itertools.chain.from_iterable(f[0] for f in folds), HOUR)
    return hours, _group(itertools.chain.from_iterable(f[1] for f in folds), DAY)


def append(
    conn: psycopg.Connection,
    market: Market,
    symbol: str,
    folded: tuple[list[Bucket], list[Bucket]],
) -> None:
    """Add the hours and days of minutes newer than every minute stored for ``symbol``
    (fold of the page, inside the transaction that stored them)."""
    params: dict = {"symbol": symbol}
    for (level, _), buckets in zip(LEVELS[:-1], reversed(folded), strict=True):
        for name, values in zip(Bucket._fields, zip(*buckets, strict=True), strict=True):
            params[f"{level}_{name}"] = list(values)
    conn.execute(statements(market).append, params)


SPAN = sql.SQL("SELECT min(open_time), max(open_time) FROM {} WHERE symbol = %(symbol)s")


def rebuild(conn: psycopg.Connection, market: Market, symbol: str) -> None:
    """Roll up every minute held for ``symbol`` (after rows were written around the ingest,
    by an import or a test)."""
    first, last = conn.execute(
        SPAN.format(sql.Identifier(market.candles)), {"symbol": symbol}
    ).fetchone()
    if first is not None:
        refresh(conn, market, symbol, first, last)


def level_for(width: timedelta | None) -> tuple[str | None, timedelta]:
    """The coarsest stored level whose buckets tile buckets of ``width`` (None: a month)."""
    for level, size in LEVELS:
        if width is None or width % size == timedelta(0):
            return level, size
    raise AssertionError("minutes divide every interval")


class MinutesGone(Exception):
    """The answer needs 1-minute rows that retention removed (they began at ``held_from``)."""

    def __init__(self, held_from: datetime):
        super().__init__(held_from)
        self.held_from = held_from


def read(
    conn: psycopg.Connection,
    market: Market,
    symbol: str,
    *,
    width: timedelta | None,
    origin: datetime,
    start: datetime,
    end: datetime,
    newest: datetime,
    held_from: datetime | None = None,
) -> list[tuple]:
    """Candles of ``width`` (None: calendar months) over [start, end), ``start`` aligned.

    ``newest`` is the newest minute held: when ``end`` is after it, no minute lies past
    ``end`` and the last rollup bucket is whole; otherwise the part of it before ``end``
    comes from the minutes. ``held_from``: minutes before it were removed (retention);
    an answer that needs them raises MinutesGone rather than leave them out.
    """
    level, size = level_for(width)
    cut = start
    if level is not None:
        cut = max(start, floor(end, size) if end <= newest else floor(end - MINUTE, size) + size)
    if held_from is not None and cut < min(end, held_from):
        raise MinutesGone(held_from)
    kind = "month" if width is None else "bin"
    params = {"symbol": symbol, "width": width, "origin": origin, "start": start, "cut": cut,
              "end": end}  # fmt: skip
    return conn.execute(statements(market).read[level, kind], params).fetchall()
