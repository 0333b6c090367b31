"""Coins, CoinMarketCap snapshots, logos and daily history: every query of this concern."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import date, datetime

import psycopg
from psycopg import sql

from relay import db
from relay.notify import announce
from relay.sources.cmc.client import Coin, Logo

CREATE_COIN_STAGE = """
    CREATE TEMP TABLE IF NOT EXISTS coin_stage (
        cmc_id integer, name text, symbol text, slug text, rank integer,
        price numeric, volume_24h numeric, market_cap numeric,
        percent_change_1h numeric, percent_change_24h numeric,
        percent_change_7d numeric, percent_change_30d numeric, last_updated timestamptz
    ) ON COMMIT DELETE ROWS
"""
COPY_COIN_STAGE = """
    COPY coin_stage (cmc_id, name, symbol, slug, rank, price, volume_24h, market_cap,
        percent_change_1h, percent_change_24h, percent_change_7d, percent_change_30d,
        last_updated)
    FROM STDIN (FORMAT BINARY)
"""
_COIN_TYPES = ["int4", "text", "text", "text", "int4"] + ["numeric"] * 7 + ["timestamptz"]

# A coin first met in an imported history file takes its CoinMarketCap id
# when a snapshot lists a coin of the same name and symbol.
ADOPT_IMPORTED = """
    UPDATE coin AS c SET cmc_id = s.cmc_id
    FROM coin_stage AS s
    WHERE c.cmc_id IS NULL
      AND lower(c.name) = lower(s.name) AND upper(c.symbol) = upper(s.symbol)
      AND NOT EXISTS (SELECT 1 FROM coin AS x WHERE x.cmc_id = s.cmc_id)
"""
UPSERT_COINS = """
    INSERT INTO coin (cmc_id, name, symbol, slug, rank, price, volume_24h, market_cap,
        percent_change_1h, percent_change_24h, percent_change_7d, percent_change_30d,
        last_updated)
    SELECT DISTINCT ON (cmc_id) cmc_id, name, symbol, slug, rank, price, volume_24h,
        market_cap, percent_change_1h, percent_change_24h, percent_change_7d,
        percent_change_30d, last_updated
    FROM coin_stage ORDER BY cmc_id
    ON CONFLICT (cmc_id) DO UPDATE SET
        name = EXCLUDED.name, symbol = EXCLUDED.symbol, slug = EXCLUDED.slug,
        rank = EXCLUDED.rank, price = EXCLUDED.price, volume_24h = EXCLUDED.volume_24h,
        market_cap = EXCLUDED.market_cap, percent_change_1h = EXCLUDED.percent_change_1h,
        percent_change_24h = EXCLUDED.percent_change_24h,
        percent_change_7d = EXCLUDED.percent_change_7d,
        percent_change_30d = EXCLUDED.percent_change_30d,
        last_updated = EXCLUDED.last_updated
"""
INSERT_SNAPSHOT = """
    INSERT INTO cmc_snapshot (id, taken_at, coins)
    VALUES (%(id)s, %(taken_at)s, (SELECT count(DISTINCT cmc_id) FROM coin_stage))
"""
INSERT_QUOTES = """
    INSERT INTO cmc_quote (snapshot_id, coin_id, rank, price, volume_24h, market_cap,
        percent_change_1h, percent_change_24h, percent_change_7d, percent_change_30d,
        last_updated)
    SELECT DISTINCT ON (c.id) %(id)s, c.id, s.rank, s.price, s.volume_24h, s.market_cap,
        s.percent_change_1h, s.percent_change_24h, s.percent_change_7d,
        s.percent_change_30d, s.last_updated
    FROM coin_stage AS s JOIN coin AS c ON c.cmc_id = s.cmc_id
    ORDER BY c.id
"""
# The snapshot's day grows like a candle: first price opens, extremes, last closes; the last
# also leaves CoinMarketCap's own changes (sql/013_dashboard_cmc_changes.sql: a trigger marks
# the rows of the latest snapshot's day, whose changes the dashboard shows).
UPSERT_DAY_FROM_SNAPSHOT = """
    INSERT INTO coin_daily AS d (coin_id, day, open, high, low, close, volume, market_cap,
        cmc_change_24h, cmc_change_7d, cmc_change_30d)
    SELECT DISTINCT ON (c.id) c.id, (%(taken_at)s AT TIME ZONE 'UTC')::date,
        s.price, s.price, s.price, s.price, s.volume_24h, s.market_cap,
        s.percent_change_24h, s.percent_change_7d, s.percent_change_30d
    FROM coin_stage AS s JOIN coin AS c ON c.cmc_id = s.cmc_id
    WHERE s.price IS NOT NULL
    ORDER BY c.id
    ON CONFLICT (coin_id, day) DO UPDATE SET
        open = coalesce(d.open, EXCLUDED.open),
        high = greatest(d.high, EXCLUDED.high),
        low = least(d.low, EXCLUDED.low),
        close = EXCLUDED.close,
        volume = EXCLUDED.volume,
        market_cap = EXCLUDED.market_cap,
        cmc_change_24h = EXCLUDED.cmc_change_24h,
        cmc_change_7d = EXCLUDED.cmc_change_7d,
        cmc_change_30d = EXCLUDED.cmc_change_30d
"""
# A snapshot of a later day makes the days before it past days (by their partial index).
UNMARK_PAST_SNAPSHOT_DAYS = """
    UPDATE coin_daily SET snapshot_latest = false
    WHERE snapshot_latest
      AND day < (SELECT (max(taken_at) AT TIME ZONE 'UTC')::date FROM cmc_snapshot)
"""

COINS_WITHOUT_LOGO = """
    SELECT cmc_id FROM coin WHERE logo_id IS NULL AND cmc_id IS NOT NULL
    ORDER BY rank NULLS LAST, id LIMIT %(limit)s
"""
LOGO_FOR_URL = "SELECT logo_id FROM logo_source WHERE url = %(url)s"
INSERT_LOGO = """
    WITH new AS (
        INSERT INTO logo (sha256, content_type, data)
        VALUES (%(sha256)s, %(content_type)s, %(data)s)
        ON CONFLICT (sha256) DO NOTHING
        RETURNING id
    )
    SELECT id FROM new UNION ALL SELECT id FROM logo WHERE sha256 = %(sha256)s
    LIMIT 1
"""
LOGO_BY_SHA256 = "SELECT id FROM logo WHERE sha256 = %(sha256)s"
INSERT_LOGO_SOURCE = """
    INSERT INTO logo_source (url, logo_id) VALUES (%(url)s, %(logo_id)s)
    ON CONFLICT (url) DO NOTHING
"""
SET_LOGO = "UPDATE coin SET logo_id = %(logo_id)s WHERE cmc_id = %(cmc_id)s"
# "A symbol" means the best-ranked coin with that symbol.
LOGO_BY_COIN = """
    SELECT l.content_type, l.data, l.sha256
    FROM coin AS c JOIN logo AS l ON l.id = c.logo_id
    WHERE c.id = %(coin_id)s
"""

LOGO_BY_SYMBOL = """
    SELECT l.content_type, l.data, l.sha256
    FROM coin AS c JOIN logo AS l ON l.id = c.logo_id
    WHERE c.id = (SELECT id FROM coin WHERE upper(symbol) = upper(%(symbol)s)
                  ORDER BY upper(symbol), rank NULLS LAST, id LIMIT 1)
"""

CREATE_HISTORY_STAGE = """
    CREATE TEMP TABLE IF NOT EXISTS history_stage (
        name text, symbol text, day date, open numeric, high numeric, low numeric,
        close numeric, volume numeric, market_cap numeric
    ) ON COMMIT DELETE ROWS
"""
COPY_HISTORY_STAGE = """
    COPY history_stage (name, symbol, day, open, high, low, close, volume, market_cap)
    FROM STDIN (FORMAT BINARY)
"""
_HISTORY_TYPES = ["text", "text", "date"] + ["numeric"] * 6
INSERT_HISTORY_COINS = """
    INSERT INTO coin (name, symbol, slug)
    SELECT DISTINCT ON (lower(h.name), upper(h.symbol)) h.name, h.symbol,
        trim(BOTH '-' FROM lower(regexp_replace(h.name, '[^A-Za-z0-9]+', '-', 'g')))
    FROM history_stage AS h
    WHERE NOT EXISTS (
        SELECT 1 FROM coin AS c
        WHERE lower(c.name) = lower(h.name) AND upper(c.symbol) = upper(h.symbol)
    )
    ORDER BY lower(h.name), upper(h.symbol)
"""
# A day already stored is kept: importing the same file twice changes nothing.
INSERT_HISTORY_DAYS = """
    INSERT INTO coin_daily (coin_id, day, open, high, low, close, volume, market_cap)
    SELECT c.id, h.day, h.open, h.high, h.low, h.close, h.volume, h.market_cap
    FROM history_stage AS h
    CROSS JOIN LATERAL (
        SELECT id FROM coin AS c
        WHERE lower(c.name) = lower(h.name) AND upper(c.symbol) = upper(h.symbol)
        ORDER BY rank NULLS LAST, id LIMIT 1
    ) AS c
    ON CONFLICT (coin_id, day) DO NOTHING
"""

# Dashboard: the coins with a close on the day and the changes stored with it (against
# 1, 7 and 30 days before, null where that day is missing: sql/010_dashboard_changes.sql;
# or CoinMarketCap's own, and which: sql/013_dashboard_cmc_changes.sql),
# sorted by a column chosen from a fixed list, nulls last in both directions, then by
# rank and id. The day held last is the default. Numbers come as the database writes
# them (text), which is what the answer shows: no Decimal made and formatted per value.
DASHBOARD_DAY = """
    SELECT day, coins FROM coin_day
    WHERE day = coalesce(%(day)s::date, (SELECT max(day) FROM coin_day))
"""
# What every dashboard query shows of a coin and its day, in DASHBOARD_COLUMNS' order,
# then the day; each query adds the day's total. Placed as {shown} by query().
DASHBOARD_SHOWN = """
    c.id, c.name, c.symbol, c.logo_id IS NOT NULL AS has_logo,
    t.close::text AS price, t.shown_change_24h::text AS change_24h,
    t.shown_change_7d::text AS change_7d, t.shown_change_1m::text AS change_1m,
    CASE WHEN t.shown_from_snapshot THEN 'cmc_snapshot' ELSE 'daily_closes' END,
    t.volume::text AS volume_24h, t.market_cap::text, t.day
"""
# Chosen coins: a handful of rows, sorted whole.
DASHBOARD = """
    SELECT {shown}, count(*) OVER () AS total
    FROM coin_daily AS t
    JOIN coin AS c ON c.id = t.coin_id
    WHERE t.day = coalesce(%(day)s::date, (SELECT max(day) FROM coin_day))
      AND (%(symbols)s::text[] IS NULL OR c.id IN (
          SELECT DISTINCT ON (upper(symbol)) id FROM coin
          WHERE upper(symbol) = ANY (%(symbols)s::text[])
          ORDER BY upper(symbol), rank NULLS LAST, id))
      AND (%(coins)s::bigint[] IS NULL OR c.id = ANY (%(coins)s::bigint[]))
    ORDER BY {order} {direction} NULLS LAST, c.rank ASC NULLS LAST, c.id
    LIMIT %(limit)s OFFSET %(offset)s
"""
# Every coin of the day, in two runs that each follow an index so a page reads about
# the rows it shows: first those with a value, along the day's index on the column,
# forwards or backwards (equal values, a handful, sorted by rank and id as they come);
# then those without, by rank and id. The caller knows where the first run ends from
# its page, or else by DASHBOARD_PRESENT; coin_day holds the total.
DASHBOARD_WITH_VALUE = """
    SELECT {shown}, (SELECT coins FROM coin_day
            WHERE day = coalesce(%(day)s::date, (SELECT max(day) FROM coin_day))) AS total
    FROM coin_daily AS t
    JOIN coin AS c ON c.id = t.coin_id
    WHERE t.day = coalesce(%(day)s::date, (SELECT max(day) FROM coin_day))
      AND {order} IS NOT NULL
    ORDER BY {order} {direction}, c.rank ASC NULLS LAST, c.id
    LIMIT %(limit)s OFFSET %(offset)s
"""
DASHBOARD_WITHOUT_VALUE = """
    SELECT {shown}, NULL AS total
    FROM coin_daily AS t
    JOIN coin AS c ON c.id = t.coin_id
    WHERE t.day = %(day)s AND {order} IS NULL
    ORDER BY c.rank ASC NULLS LAST, c.id
    LIMIT %(limit)s OFFSET %(offset)s
"""
DASHBOARD_PRESENT = """
    SELECT count(*) FROM coin_daily AS t WHERE t.day = %(day)s AND {order} IS NOT NULL
"""
DASHBOARD_ORDER = {
    "crypto": "lower(c.name)",
    "price": "t.close",
    "24h": "t.shown_change_24h",
    "7d": "t.shown_change_7d",
    "1m": "t.shown_change_1m",
    "24h-volume": "t.volume",
    "market_cap": "t.market_cap",
}
# Orders whose column is never null: every coin is in the first run.
_NEVER_NULL = frozenset({"crypto", "price"})
DASHBOARD_COLUMNS = (
    "id", "name", "symbol", "has_logo", "price", "change_24h", "change_7d", "change_1m",
    "changes_from", "volume_24h", "market_cap",
)  # fmt: skip

# Search: exact symbol, then exact name, then prefix, then substring; best rank first.
SEARCH = """
    SELECT id, name, symbol, slug, logo_id IS NOT NULL AS has_logo
    FROM coin
    WHERE lower(name) LIKE %(contains)s ESCAPE '\\' OR lower(symbol) LIKE %(contains)s ESCAPE '\\'
    ORDER BY CASE
            WHEN lower(symbol) = %(exact)s THEN 0
            WHEN lower(name) = %(exact)s THEN 1
            WHEN lower(symbol) LIKE %(prefix)s ESCAPE '\\'
              OR lower(name) LIKE %(prefix)s ESCAPE '\\' THEN 2
            ELSE 3
        END,
        rank NULLS LAST, id
    LIMIT %(limit)s
"""


def store_snapshot(
    conn: psycopg.Connection, snapshot_id: uuid.UUID, taken_at: datetime, coins: Sequence[Coin]
) -> int:
    """Store one listings snapshot in the caller's transaction; return the coins stored."""
    conn.execute(CREATE_COIN_STAGE)
    with conn.cursor() as cur:
        db.copy_rows(cur, COPY_COIN_STAGE, _COIN_TYPES, coins)
        cur.execute(ADOPT_IMPORTED)
        cur.execute(UPSERT_COINS)
        cur.execute(INSERT_SNAPSHOT, {"id": snapshot_id, "taken_at": taken_at})
        cur.execute(INSERT_QUOTES, {"id": snapshot_id})
        stored = cur.rowcount
        cur.execute(UPSERT_DAY_FROM_SNAPSHOT, {"taken_at": taken_at})
        cur.execute(UNMARK_PAST_SNAPSHOT_DAYS)
    announce(conn, "coins")
    return stored


def coins_without_logo(conn: psycopg.Connection, limit: int) -> list[int]:
    return [row[0] for row in conn.execute(COINS_WITHOUT_LOGO, {"limit": limit})]


def logo_for_url(conn: psycopg.Connection, url: str) -> int | None:
    row = conn.execute(LOGO_FOR_URL, {"url": url}).fetchone()
    return row[0] if row else None


def store_logo(conn: psycopg.Connection, logo: Logo) -> int:
    """Keep the image once per content, remember its URL; return its id."""
    row = conn.execute(
        INSERT_LOGO,
        {"sha256": logo.sha256, "content_type": logo.content_type, "data": logo.data},
    ).fetchone()
    if row is None:
        # Another transaction stored the same image after this statement's snapshot was
        # taken (logos are fetched concurrently): it is committed now, so read it again.
        row = conn.execute(LOGO_BY_SHA256, {"sha256": logo.sha256}).fetchone()
    logo_id = row[0]
    conn.execute(INSERT_LOGO_SOURCE, {"url": logo.url, "logo_id": logo_id})
    return logo_id


def set_logo(conn: psycopg.Connection, cmc_id: int, logo_id: int) -> None:
    """Give a coin its logo (the caller announces the change once for all it set)."""
    conn.execute(SET_LOGO, {"cmc_id": cmc_id, "logo_id": logo_id})


def announce_logos(conn: psycopg.Connection) -> None:
    announce(conn, "coins")


def logo_by_symbol(conn: psycopg.Connection, symbol: str) -> tuple[str, bytes, bytes] | None:
    return conn.execute(LOGO_BY_SYMBOL, {"symbol": symbol}).fetchone()


def logo_by_coin(conn: psycopg.Connection, coin_id: int) -> tuple[str, bytes, bytes] | None:
    return conn.execute(LOGO_BY_COIN, {"coin_id": coin_id}).fetchone()


def store_history(conn: psycopg.Connection, rows: Sequence[tuple]) -> int:
    """Import daily history rows (name, symbol, day, o, h, l, c, volume, market cap)."""
    conn.execute(CREATE_HISTORY_STAGE)
    with conn.cursor() as cur:
        db.copy_rows(cur, COPY_HISTORY_STAGE, _HISTORY_TYPES, rows)
        cur.execute(INSERT_HISTORY_COINS)
        cur.execute(INSERT_HISTORY_DAYS)
        stored = cur.rowcount
    announce(conn, "coins")
    return stored


@functools.cache  # a few dozen: the templates by DASHBOARD_ORDER's keys and two directions
def query(template: str, order_by: str, descending: bool = False) -> bytes:
    """A dashboard query: its shown columns, and the order's fixed fragment (never the
    user's text) and direction; rendered once (db.rendered)."""
    return db.rendered(
        sql.SQL(template).format(
            shown=sql.SQL(DASHBOARD_SHOWN),
            order=sql.SQL(DASHBOARD_ORDER[order_by]),
            direction=sql.SQL("DESC" if descending else "ASC"),
        )
    )


def dashboard(
    conn: psycopg.Connection,
    day: date | None,
    symbols: Sequence[str] | None,
    order_by: str,
    descending: bool,
    limit: int,
    offset: int,
    coins: Sequence[int] | None = None,
) -> tuple[date | None, int, list[dict]]:
    """Return the day (default: the latest held), its total and one page of its table;
    only the best-ranked coin of each of ``symbols``, or the ``coins`` (ids), when given."""
    args = {"day": day, "limit": limit, "offset": offset}
    if symbols or coins:
        upper = [s.upper() for s in symbols] if symbols else None
        chosen = {**args, "symbols": upper, "coins": list(coins) if coins else None}
        rows = conn.execute(query(DASHBOARD, order_by, descending), chosen).fetchall()
        return (rows[0][-2], rows[0][-1], _dashboard_rows(rows)) if rows else (day, 0, [])
    rows = conn.execute(query(DASHBOARD_WITH_VALUE, order_by, descending), args).fetchall()
    if len(rows) == limit:
        return rows[0][-2], rows[0][-1], _dashboard_rows(rows)
    # The first run ended on this page or before it: the coins without a value follow,
    # if there are any and the page reaches them.
    if rows:
        day, total = rows[0][-2:]
    else:
        held = conn.execute(DASHBOARD_DAY, {"day": day}).fetchone()
        if held is None:
            return day, 0, []
        day, total = held
    if order_by in _NEVER_NULL:
        present = total
    elif rows:
        present = offset + len(rows)
    else:
        count = query(DASHBOARD_PRESENT, order_by)
        present = conn.execute(count, {"day": day}).fetchone()[0]
    skip = max(0, offset - present)
    if skip < total - present:
        args = {"day": day, "limit": limit - len(rows), "offset": skip}
        rows += conn.execute(query(DASHBOARD_WITHOUT_VALUE, order_by), args).fetchall()
    return day, total, _dashboard_rows(rows)


def _dashboard_rows(rows: list[tuple]) -> list[dict]:
    return [dict(zip(DASHBOARD_COLUMNS, row[:-2], strict=True)) for row in rows]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(conn: psycopg.Connection, text: str, limit: int) -> list[dict]:
    needle = _like_escape(text.lower())
    rows = conn.execute(
        SEARCH,
        {
            "exact": text.lower(),
            "prefix": needle + "%",
            "contains": "%" + needle + "%",
            "limit": limit,
        },
    ).fetchall()
    return [
        dict(zip(("id", "name", "symbol", "slug", "has_logo"), row, strict=True)) for row in rows
    ]
