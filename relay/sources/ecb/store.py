"""ECB reference rates in PostgreSQL: every query of this concern."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal

import psycopg

from relay import db
from relay.notify import announce
from relay.sources.ecb.client import Rate

NEWEST_DAY = "SELECT max(day) FROM ecb_rate"
FIRST_DAY = "SELECT min(day) FROM ecb_rate"
# The business day a date means: itself if published, else the nearest earlier one.
DAY_AT_OR_BEFORE = "SELECT max(day) FROM ecb_rate WHERE day <= %(on)s"
RATES_ON = "SELECT currency, rate FROM ecb_rate WHERE day = %(day)s ORDER BY currency"
SERIES = """
    SELECT day, currency, rate FROM ecb_rate
    WHERE day >= %(start)s AND day <= %(end)s
    ORDER BY day, currency
"""
KNOWN_CURRENCY = "SELECT EXISTS (SELECT 1 FROM ecb_rate WHERE currency = %(currency)s)"

CREATE_STAGE = """
    CREATE TEMP TABLE IF NOT EXISTS rate_stage (day date, currency text, rate numeric)
    ON COMMIT DELETE ROWS
"""
COPY_STAGE = "COPY rate_stage (day, currency, rate) FROM STDIN (FORMAT BINARY)"
# A published rate never changes: a day already stored is left as it is.
MERGE_STAGE = """
    INSERT INTO ecb_rate (day, currency, rate)
    SELECT DISTINCT ON (day, currency) day, currency, rate FROM rate_stage
    ORDER BY day, currency
    ON CONFLICT (day, currency) DO NOTHING
"""


def newest_day(conn: psycopg.Connection) -> date | None:
    return conn.execute(NEWEST_DAY).fetchone()[0]


def first_day(conn: psycopg.Connection) -> date | None:
    return conn.execute(FIRST_DAY).fetchone()[0]


def day_at_or_before(conn: psycopg.Connection, on: date) -> date | None:
    return conn.execute(DAY_AT_OR_BEFORE, {"on": on}).fetchone()[0]


def rates_on(conn: psycopg.Connection, day: date) -> dict[str, Decimal]:
    return dict(conn.execute(RATES_ON, {"day": day}).fetchall())


def series(conn: psycopg.Connection, start: date, end: date) -> list[tuple]:
    return conn.execute(SERIES, {"start": start, "end": end}).fetchall()


def known_currency(conn: psycopg.Connection, currency: str) -> bool:
    return conn.execute(KNOWN_CURRENCY, {"currency": currency}).fetchone()[0]


def store_rates(conn: psycopg.Connection, rates: Iterable[Rate]) -> int:
    """Store rates in the caller's transaction via COPY; return how many were new.

    ``rates`` may be read lazily (the history zip is parsed as it is copied):
    an error it raises part-way fails the caller's transaction whole.
    """
    conn.execute(CREATE_STAGE)
    with conn.cursor() as cur:
        db.copy_rows(cur, COPY_STAGE, ["date", "text", "numeric"], rates)
        cur.execute(MERGE_STAGE)
        stored = cur.rowcount
    if stored:
        announce(conn, "rates")
    return stored
