"""Coins, CoinMarketCap snapshots, logos and daily history: every query of this concern."""

from __future__ import annotations

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
# The snapshot's day grows like a candle: first price opens, extremes, last closes.
UPSERT_DAY_FROM_SNAPSHOT = """
    INSERT INTO coin_daily AS d (coin_id, day, open, high, low, close, volume, market_cap)
    SELECT DISTINCT ON (c.id) c.id, (%(taken_at)s AT TIME ZONE 'UTC')::date,
        s.price, s.price, s.price, s.price, s.volume_24h, s.market_cap
    FROM coin_stage AS s JOIN coin AS c ON c.cmc_id = s.cmc_id
    WHERE s.price IS NOT NULL
    ORDER BY c.id
    ON CONFLICT (coin_id, day) DO UPDATE SET
        open = coalesce(d.open, EXCLUDED.open),
        high = greatest(d.high, EXCLUDED.high),
        low = least(d.low, EXCLUDED.low),
        close = EXCLUDED.close,
        volume = EXCLUDED.volume,
        market_cap = EXCLUDED.market_cap
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

LATEST_DAY = "SELECT max(day) FROM coin_daily"

# Dashboard: the coins with a close on the day, changes against 1, 7 and 30 days
# before (null where that day is missing), sorted by a column chosen from a fixed
# list, nulls last in both directions.
DASHBOARD = """
    SELECT c.id, c.name, c.symbol, c.logo_id IS NOT NULL AS has_logo,
        t.close AS price,
        round((t.close / nullif(back.d1, 0) - 1) * 100, 4) AS change_24h,
        round((t.close / nullif(back.d7, 0) - 1) * 100, 4) AS change_7d,
        round((t.close / nullif(back.d30, 0) - 1) * 100, 4) AS change_1m,
        t.volume AS volume_24h, t.market_cap,
        count(*) OVER () AS total
    FROM coin_daily AS t
    JOIN coin AS c ON c.id = t.coin_id
    -- One primary-key probe per coin and day back: the cost follows the coins
    -- shown, never the length of the history.
    CROSS JOIN LATERAL (
        SELECT
            (SELECT close FROM coin_daily WHERE coin_id = t.coin_id AND day = t.day - 1) AS d1,
            (SELECT close FROM coin_daily WHERE coin_id = t.coin_id AND day = t.day - 7) AS d7,
            (SELECT close FROM coin_daily WHERE coin_id = t.coin_id AND day = t.day - 30) AS d30
    ) AS back
    WHERE t.day = %(day)s
      AND (%(symbols)s::text[] IS NULL OR c.id IN (
          SELECT DISTINCT ON (upper(symbol)) id FROM coin
          WHERE upper(symbol) = ANY (%(symbols)s::text[])
          ORDER BY upper(symbol), rank NULLS LAST, id))
    ORDER BY {order} {direction} NULLS LAST, c.rank ASC NULLS LAST, c.id
    LIMIT %(limit)s OFFSET %(offset)s
"""
DASHBOARD_ORDER = {
    "crypto": "lower(c.name)",
    "price": "price",
    "24h": "change_24h",
    "7d": "change_7d",
    "1m": "change_1m",
    "24h-volume": "volume_24h",
    "market_cap": "t.market_cap",
}
DASHBOARD_COLUMNS = (
    "id", "name", "symbol", "has_logo", "price", "change_24h", "change_7d", "change_1m",
    "volume_24h", "market_cap",
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


def latest_day(conn: psycopg.Connection) -> date | None:
    return conn.execute(LATEST_DAY).fetchone()[0]


def dashboard(
    conn: psycopg.Connection,
    day: date,
    symbols: Sequence[str] | None,
    order_by: str,
    descending: bool,
    limit: int,
    offset: int,
) -> tuple[int, list[dict]]:
    query = sql.SQL(DASHBOARD).format(
        order=sql.SQL(DASHBOARD_ORDER[order_by]),  # a fixed fragment, never the user's text
        direction=sql.SQL("DESC" if descending else "ASC"),
    )
    rows = conn.execute(
        query,
        {
            "day": day,
            "symbols": [s.upper() for s in symbols] if symbols else None,
            "limit": limit,
            "offset": offset,
        },
    ).fetchall()
    total = rows[0][-1] if rows else 0
    return total, [dict(zip(DASHBOARD_COLUMNS, row[:-1], strict=True)) for row in rows]


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
