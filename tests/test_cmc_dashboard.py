"""The dashboard's stored changes: always what the per-request ranking gave, read by index."""

from __future__ import annotations

import itertools
import random
import threading
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql

from relay.migrate import migrate
from relay.sources.cmc import store as coin_store
from relay.sources.cmc.client import Coin
from tests.conftest import fresh_database

# The dashboard worked out per request, as it was before the changes were stored (sql/010):
# every coin's changes from the closes 1, 7 and 30 days before; and, since sql/013, the
# snapshot's own changes on the latest snapshot's day (when it has any), or on another day
# where a close is missing for a change the snapshot has. The reference.
REFERENCE = """
    SELECT c.id, c.name, c.symbol, c.logo_id IS NOT NULL AS has_logo,
        t.close AS price,
        CASE WHEN src.snapshot THEN {cmc_24h} ELSE k.change_24h END AS change_24h,
        CASE WHEN src.snapshot THEN {cmc_7d} ELSE k.change_7d END AS change_7d,
        CASE WHEN src.snapshot THEN {cmc_30d} ELSE k.change_1m END AS change_1m,
        CASE WHEN src.snapshot THEN 'cmc_snapshot' ELSE 'daily_closes' END AS changes_from,
        t.volume AS volume_24h, t.market_cap,
        count(*) OVER () AS total
    FROM coin_daily AS t
    JOIN coin AS c ON c.id = t.coin_id
    CROSS JOIN LATERAL (
        SELECT
            (SELECT close FROM coin_daily WHERE coin_id = t.coin_id AND day = t.day - 1) AS d1,
            (SELECT close FROM coin_daily WHERE coin_id = t.coin_id AND day = t.day - 7) AS d7,
            (SELECT close FROM coin_daily WHERE coin_id = t.coin_id AND day = t.day - 30) AS d30
    ) AS back
    CROSS JOIN LATERAL (
        SELECT
            round((t.close / nullif(back.d1, 0) - 1) * 100, 4) AS change_24h,
            round((t.close / nullif(back.d7, 0) - 1) * 100, 4) AS change_7d,
            round((t.close / nullif(back.d30, 0) - 1) * 100, 4) AS change_1m
    ) AS k
    CROSS JOIN LATERAL (
        SELECT CASE
            WHEN t.day = (SELECT max((taken_at AT TIME ZONE 'UTC')::date) FROM cmc_snapshot)
            THEN {cmc_24h} IS NOT NULL OR {cmc_7d} IS NOT NULL OR {cmc_30d} IS NOT NULL
            ELSE ({cmc_24h} IS NOT NULL AND k.change_24h IS NULL)
              OR ({cmc_7d} IS NOT NULL AND k.change_7d IS NULL)
              OR ({cmc_30d} IS NOT NULL AND k.change_1m IS NULL)
        END AS snapshot
    ) AS src
    WHERE t.day = %(day)s
      AND (%(symbols)s::text[] IS NULL OR c.id IN (
          SELECT DISTINCT ON (upper(symbol)) id FROM coin
          WHERE upper(symbol) = ANY (%(symbols)s::text[])
          ORDER BY upper(symbol), rank NULLS LAST, id))
    ORDER BY {order} {direction} NULLS LAST, c.rank ASC NULLS LAST, c.id
    LIMIT %(limit)s OFFSET %(offset)s
"""
# CoinMarketCap's changes of a day's row: none before sql/013.
CMC_COLUMNS = {f"cmc_{n}": sql.SQL(f"t.cmc_change_{n}") for n in ("24h", "7d", "30d")}
NO_CMC_COLUMNS = {key: sql.SQL("NULL::numeric") for key in CMC_COLUMNS}
REFERENCE_ORDER = {
    "crypto": "lower(c.name)",
    "price": "price",
    "24h": "change_24h",
    "7d": "change_7d",
    "1m": "change_1m",
    "24h-volume": "volume_24h",
    "market_cap": "t.market_cap",
}
NUMBERS = ("price", "change_24h", "change_7d", "change_1m", "volume_24h", "market_cap")


def reference(conn, day, symbols, order_by, descending, limit, offset, *, cmc=CMC_COLUMNS):
    """(day, total, rows) as the dashboard answers, worked out per request, numbers as the
    answer shows them. ``cmc``: where a row's CoinMarketCap changes are."""
    day = day or conn.execute("SELECT max(day) FROM coin_daily").fetchone()[0]
    if day is None:
        return None, 0, []
    # the snapshot's changes are columns, spliced as the order is (the rest is bound)
    query = sql.SQL(REFERENCE).format(
        order=sql.SQL(REFERENCE_ORDER[order_by]),
        direction=sql.SQL("DESC" if descending else "ASC"),
        **cmc,
    )
    args = {"day": day, "symbols": [s.upper() for s in symbols] if symbols else None,
            "limit": limit, "offset": offset}  # fmt: skip
    rows = conn.execute(query, args).fetchall()
    names = ("id", "name", "symbol", "has_logo", *NUMBERS[:4], "changes_from", *NUMBERS[4:])
    out = [dict(zip(names, row[:-1], strict=True)) for row in rows]
    for row in out:
        for key in NUMBERS:
            row[key] = None if row[key] is None else format(row[key], "f")
    return day, (rows[0][-1] if rows else 0), out


def stored_equals_worked_out(conn) -> None:
    stale = conn.execute(
        """
        SELECT t.coin_id, t.day
        FROM coin_daily AS t JOIN coin_daily_change AS f USING (coin_id, day)
        WHERE (t.change_24h, t.change_7d, t.change_1m)
              IS DISTINCT FROM (f.change_24h, f.change_7d, f.change_1m)
        """
    ).fetchall()
    assert stale == []
    counts = conn.execute(
        """
        SELECT day, coins FROM coin_day
        FULL JOIN (SELECT day, count(*) AS n FROM coin_daily GROUP BY day) AS held USING (day)
        WHERE coins IS DISTINCT FROM n
        """
    ).fetchall()
    assert counts == []


START = date(2024, 1, 1)
NAMES = [(f"Coin {i}", f"C{i % 9}") for i in range(14)]  # some symbols shared
CLOSES = [Decimal(v) for v in ("0", "1", "1.5", "2", "2.00", "3.25", "10", "0.0001", "7")]


def random_close(rnd):
    return rnd.choice(CLOSES) if rnd.random() < 0.5 else Decimal(rnd.randint(1, 4000)) / 100


def random_change(rnd):
    """A change as CoinMarketCap sends it: often many digits, sometimes missing or tied."""
    return rnd.choice([None, Decimal("0"), Decimal("1.5"), Decimal("-2.25"),
                       Decimal(rnd.randint(-10**9, 10**9)) / 10**7])  # fmt: skip


def history_rows(rnd, n):
    rows = []
    for _ in range(n):
        name, symbol = rnd.choice(NAMES)
        close = random_close(rnd)
        volume = rnd.choice([None, close * 10, Decimal(rnd.randint(0, 3))])
        cap = rnd.choice([None, close * 1000, Decimal(5)])
        day = START + timedelta(days=rnd.randint(0, 70))
        rows.append((name, symbol, day, close, close, close, close, volume, cap))
    return rows


def snapshot(rnd, conn, taken_at):
    coins = []
    for i in rnd.sample(range(len(NAMES)), rnd.randint(1, len(NAMES))):
        name, symbol = NAMES[i]
        price = None if rnd.random() < 0.1 else random_close(rnd)
        rank = None if rnd.random() < 0.2 else rnd.randint(1, 6)  # ties and nulls
        volume = rnd.choice([None, Decimal(rnd.randint(0, 3))])
        cap = rnd.choice([None, Decimal(9)])
        changes = [random_change(rnd) for _ in range(3)] if rnd.random() < 0.7 else [None] * 3
        coins.append(Coin(i + 1, name, symbol, name.lower(), rank, price, volume, cap,
                          None, *changes, None))  # fmt: skip
    coin_store.store_snapshot(conn, uuid.uuid4(), taken_at, coins)


def by_hand(rnd, conn):
    """A write no store function makes: relay's triggers must see it all the same."""
    kind = rnd.choice(["update", "delete", "insert", "move", "rank"])
    if kind == "update":
        conn.execute(
            "UPDATE coin_daily SET close = %s "
            "WHERE (coin_id + extract(day FROM day)::int) %% 5 = %s",
            (random_close(rnd), rnd.randint(0, 4)),
        )
    elif kind == "delete":
        conn.execute(
            "DELETE FROM coin_daily WHERE (coin_id * 7 + extract(doy FROM day)::int) %% 11 = %s",
            (rnd.randint(0, 10),),
        )
    elif kind == "insert":
        conn.execute(
            """
            INSERT INTO coin_daily (coin_id, day, close, volume)
            SELECT id, %s::date + g, %s, %s FROM coin, generate_series(0, %s) AS g
            ON CONFLICT DO NOTHING
            """,
            (START + timedelta(days=rnd.randint(0, 70)), random_close(rnd), rnd.randint(0, 2),
             rnd.randint(0, 3)),
        )  # fmt: skip
    elif kind == "move":  # primary keys change: a day and a coin lose and gain rows
        conn.execute(
            """
            UPDATE coin_daily AS t SET day = t.day + %s
            WHERE coin_id = (SELECT min(coin_id) FROM coin_daily)
              AND NOT EXISTS (SELECT 1 FROM coin_daily AS x
                              WHERE x.coin_id = t.coin_id AND x.day = t.day + %s)
              AND t.day IN (SELECT max(day) FROM coin_daily WHERE coin_id = t.coin_id)
            """,
            (rnd.choice([1, 7, 30]),) * 2,
        )
    else:
        conn.execute("UPDATE coin SET rank = CASE WHEN random() < 0.2 THEN NULL "
                     "ELSE (random() * 5)::int END")  # fmt: skip


def check_pages(rnd, conn, pages) -> int:
    """Compare ``pages`` random pages with the reference; return how many showed rows."""
    shown = 0
    held = [r[0] for r in conn.execute("SELECT DISTINCT day FROM coin_daily")]
    for _ in range(pages):
        day = rnd.choice([None, START + timedelta(days=99), *held])
        symbols = rnd.choice([None, None, None, [rnd.choice(NAMES)[1].lower() for _ in range(3)]])
        order_by = rnd.choice(list(coin_store.DASHBOARD_ORDER))
        descending = rnd.random() < 0.5
        limit = rnd.choice([1, 2, 3, 5, 8, 100])
        offset = rnd.choice([0, 0, 1, 2, 4, 7, 11, 13, 20])
        args = (day, symbols, order_by, descending, limit, offset)
        want = reference(conn, *args)
        got = coin_store.dashboard(conn, *args)
        if not want[2]:  # nothing to show: the answer is 204, whatever the day and total
            assert got[2] == [], args
        else:
            assert got == want, args
            shown += 1
    return shown


@pytest.mark.parametrize("seed", range(6))
def test_stored_ranking_is_the_ranking_worked_out_per_request(conn, seed):
    rnd = random.Random(seed)
    shown = 0
    for _ in range(14):
        with conn.transaction():
            action = rnd.choice(["history", "history", "snapshot", "by_hand"])
            if action == "history":
                coin_store.store_history(conn, history_rows(rnd, rnd.randint(1, 120)))
            elif action == "snapshot":
                day = START + timedelta(days=rnd.randint(0, 70))
                snapshot(rnd, conn, datetime.combine(day, time(rnd.randint(0, 23)), UTC))
            elif conn.execute("SELECT count(*) FROM coin").fetchone()[0]:
                by_hand(rnd, conn)
        stored_equals_worked_out(conn)
        shown += check_pages(rnd, conn, 25)
    assert shown > 50  # the pages compared were not all empty


def test_writers_take_turns_so_none_keeps_a_change_from_a_close_since_written(conn, database_url):
    conn.execute("INSERT INTO coin (name, symbol, slug) VALUES ('A', 'A', 'a')")
    conn.execute("INSERT INTO coin_daily (coin_id, day, close) VALUES (1, '2024-01-01', 100)")
    first = psycopg.connect(database_url)
    second = psycopg.connect(database_url)
    try:
        # The first changes the day before while the second adds the day after it.
        first.execute("UPDATE coin_daily SET close = 50 WHERE day = '2024-01-01'")
        done = threading.Event()

        def add_next_day():
            second.execute(
                "INSERT INTO coin_daily (coin_id, day, close) VALUES (1, '2024-01-02', 200)"
            )
            second.commit()
            done.set()

        writer = threading.Thread(target=add_next_day)
        writer.start()
        assert not done.wait(0.5)  # waits its turn
        first.commit()
        writer.join(10)
        assert done.is_set()
    finally:
        first.close()
        second.close()
    assert conn.execute(
        "SELECT change_24h FROM coin_daily WHERE day = '2024-01-02'"
    ).fetchone() == (Decimal("300.0000"),)
    stored_equals_worked_out(conn)


def test_the_migration_works_out_the_days_already_held(server_url):
    with fresh_database(server_url, "relay_dashboard", before="010") as url:
        rnd = random.Random(7)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(CREATE_COINS_BEFORE_010)
            for day in range(70):
                for coin in range(1, 6):
                    if rnd.random() < 0.8:
                        conn.execute(
                            "INSERT INTO coin_daily (coin_id, day, close, volume) "
                            "VALUES (%s, %s, %s, %s)",
                            (coin, START + timedelta(days=day), random_close(rnd), coin),
                        )
            want = [reference(conn, None, None, o, d, 100, 0, cmc=NO_CMC_COLUMNS)
                    for o in coin_store.DASHBOARD_ORDER for d in (False, True)]  # fmt: skip
        migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            stored_equals_worked_out(conn)
            got = [coin_store.dashboard(conn, None, None, o, d, 100, 0)
                   for o in coin_store.DASHBOARD_ORDER for d in (False, True)]  # fmt: skip
        assert got == want


CREATE_COINS_BEFORE_010 = """
    INSERT INTO coin (cmc_id, name, symbol, slug, rank)
    SELECT i, 'Coin ' || i, 'C' || i, 'coin-' || i, nullif(i % 3, 0)
    FROM generate_series(1, 5) AS i
"""


def test_truncating_the_days_empties_the_counts(conn):
    conn.execute("INSERT INTO coin (name, symbol, slug) VALUES ('A', 'A', 'a')")
    conn.execute("INSERT INTO coin_daily (coin_id, day, close) VALUES (1, '2024-01-01', 1)")
    conn.execute("TRUNCATE coin CASCADE")
    assert conn.execute("SELECT count(*) FROM coin_day").fetchone() == (0,)


# -- served by indexes -------------------------------------------------------------------

DAY = date(2022, 12, 24)


@pytest.fixture
def market(conn):
    """5000 coins over 32 days, every value distinct; on the last day one in ten has no
    24h change (no close the day before), and on the first day no coin has a 1m change."""
    conn.execute(
        """
        INSERT INTO coin (cmc_id, name, symbol, slug, rank)
        SELECT i, 'Coin ' || i, 'C' || i, 'coin-' || i, i FROM generate_series(1, 5000) AS i
        """
    )
    conn.execute(
        """
        INSERT INTO coin_daily (coin_id, day, close, volume, market_cap)
        SELECT c.id, d::date, p, p * 1000 + c.id, p * 7 + c.id
        FROM coin AS c,
             generate_series(date '2022-11-23', date '2022-12-24', interval '1 day') AS d,
             LATERAL (SELECT 1 + ((c.id * 7919 + (d::date - date '2022-01-01') * 104729)
                                  % 1000003) / 1000.0 AS p) AS x
        WHERE NOT (d::date = date '2022-12-23' AND c.id % 10 = 0)
        """
    )
    conn.execute("VACUUM ANALYZE coin_daily")
    conn.execute("ANALYZE coin")


def read_rows(conn, query, args) -> tuple[dict, str]:
    """Rows the plan read from each table (every scan node's rows x loops), and the plan."""
    plan = conn.execute(
        b"EXPLAIN (ANALYZE, FORMAT JSON, COSTS OFF, TIMING OFF) " + query, args
    ).fetchone()[0][0]["Plan"]
    text = "\n".join(r[0] for r in conn.execute(b"EXPLAIN (COSTS OFF) " + query, args).fetchall())
    rows = {"coin_daily": 0, "coin": 0}

    def walk(node):
        if node.get("Relation Name") in rows:
            rows[node["Relation Name"]] += node["Actual Rows"] * node["Actual Loops"]
        for child in node.get("Plans", []):
            walk(child)

    walk(plan)
    return rows, text


def test_a_page_reads_about_the_rows_it_shows_in_every_order(market, conn):
    for order_by, descending in itertools.product(coin_store.DASHBOARD_ORDER, (False, True)):
        query = coin_store.query(coin_store.DASHBOARD_WITH_VALUE, order_by, descending)
        rows, plan = read_rows(conn, query, {"day": None, "limit": 100, "offset": 0})
        assert "Seq Scan on coin_daily" not in plan and "Seq Scan on coin " not in plan, plan
        # each row and its coin, and the rest of the equal values cut at the page's end
        assert rows["coin_daily"] <= 105 and rows["coin"] <= 105, (order_by, plan)
    # Past the coins with a 24h change, those without (one in ten) come from their index.
    query = coin_store.query(coin_store.DASHBOARD_WITHOUT_VALUE, "24h")
    rows, plan = read_rows(conn, query, {"day": DAY, "limit": 100, "offset": 200})
    assert "Seq Scan on coin_daily" not in plan, plan
    assert rows["coin_daily"] <= 500, plan
    # On the first day no coin has a 1m change: they are read by rank, a page at a time.
    first = date(2022, 11, 23)
    query = coin_store.query(coin_store.DASHBOARD_WITHOUT_VALUE, "1m")
    rows, plan = read_rows(conn, query, {"day": first, "limit": 100, "offset": 0})
    assert "coin_rank_idx" in plan, plan
    assert rows["coin_daily"] <= 105 and rows["coin"] <= 105, plan
    total, page = coin_store.dashboard(conn, first, None, "1m", True, 100, 0)[1:]
    assert total == 5000 and [r["id"] for r in page] == list(range(1, 101))


def test_a_page_of_the_snapshots_changes_reads_about_the_rows_it_shows(market, conn):
    """On the latest snapshot's day the changes shown are CoinMarketCap's: still by index."""
    conn.execute(
        "INSERT INTO cmc_snapshot (id, taken_at, coins) VALUES (%s, %s, 5000)",
        (uuid.uuid4(), datetime.combine(DAY, time(12), UTC)),
    )
    # CoinMarketCap's figures for the day, in another order than the closes'; none for
    # one coin in ten, whose row shows the closes' changes.
    conn.execute(
        """
        UPDATE coin_daily
        SET cmc_change_24h = ((coin_id * 104729) %% 20011) / 4.0 - 1000,
            cmc_change_7d = ((coin_id * 7919) %% 30011) / 1000.0 - 15,
            cmc_change_30d = ((coin_id * 15485863) %% 50021) / 1000.0 - 25
        WHERE day = %s AND coin_id %% 10 <> 3
        """,
        (DAY,),
    )
    conn.execute("VACUUM ANALYZE coin_daily")
    assert conn.execute(
        "SELECT count(*) FILTER (WHERE snapshot_latest), count(*) FILTER (WHERE "
        "shown_from_snapshot) FROM coin_daily WHERE day = %s", (DAY,)
    ).fetchone() == (4500, 4500)  # fmt: skip
    for order_by, descending in itertools.product(("24h", "7d", "1m"), (False, True)):
        query = coin_store.query(coin_store.DASHBOARD_WITH_VALUE, order_by, descending)
        rows, plan = read_rows(conn, query, {"day": None, "limit": 100, "offset": 0})
        assert "Seq Scan on coin_daily" not in plan and "Seq Scan on coin " not in plan, plan
        assert rows["coin_daily"] <= 105 and rows["coin"] <= 105, (order_by, plan)
    day, total, page = coin_store.dashboard(conn, None, None, "24h", True, 20, 0)
    assert (day, total) == (DAY, 5000)
    want = conn.execute(
        """
        SELECT coin_id, coalesce(cmc_change_24h, change_24h)::text,
            CASE WHEN cmc_change_24h IS NULL THEN 'daily_closes' ELSE 'cmc_snapshot' END
        FROM coin_daily WHERE day = %s
        ORDER BY coalesce(cmc_change_24h, change_24h) DESC NULLS LAST, coin_id LIMIT 20
        """,
        (DAY,),
    ).fetchall()
    assert [(r["id"], r["change_24h"], r["changes_from"]) for r in page] == want
    assert {r["changes_from"] for r in page} == {"cmc_snapshot", "daily_closes"}


def test_the_migration_takes_each_days_changes_from_its_last_snapshot(server_url):
    with fresh_database(server_url, "relay_cmc_changes", before="013") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(CREATE_COINS_BEFORE_010)
            # Two snapshots on the first day (the later one, without a price for coin 2,
            # wrote no close for it), one on the next; the quotes as each said them.
            snapshots = [
                (datetime(2024, 1, 1, 8, tzinfo=UTC),
                 {1: ("1", "0.123456789", "-1", None), 2: ("2", "5", "6", "7")}),
                (datetime(2024, 1, 1, 20, tzinfo=UTC),
                 {1: ("1.5", "0.25", "-2", "3"), 2: (None, "9", "9", "9")}),
                (datetime(2024, 1, 2, 9, tzinfo=UTC),
                 {1: ("1.6", "-0.0000001", None, None), 3: ("3", None, None, None)}),
            ]  # fmt: skip
            for taken_at, quotes in snapshots:
                snapshot_id = uuid.uuid4()
                conn.execute(
                    "INSERT INTO cmc_snapshot (id, taken_at, coins) VALUES (%s, %s, %s)",
                    (snapshot_id, taken_at, len(quotes)),
                )
                for coin_id, (price, h24, d7, d30) in quotes.items():
                    conn.execute(
                        "INSERT INTO cmc_quote (snapshot_id, coin_id, price, percent_change_24h,"
                        " percent_change_7d, percent_change_30d) VALUES (%s, %s, %s, %s, %s, %s)",
                        (snapshot_id, coin_id, price, h24, d7, d30),
                    )
                    if price is not None:
                        conn.execute(
                            "INSERT INTO coin_daily (coin_id, day, close) VALUES (%s, %s, %s) "
                            "ON CONFLICT (coin_id, day) DO UPDATE SET close = EXCLUDED.close",
                            (coin_id, taken_at.date(), price),
                        )
        migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            held = conn.execute(
                "SELECT coin_id, day::text, cmc_change_24h::text, cmc_change_7d::text, "
                "cmc_change_30d::text, snapshot_latest FROM coin_daily ORDER BY day, coin_id"
            ).fetchall()
            assert held == [
                (1, "2024-01-01", "0.25", "-2", "3", False),
                (2, "2024-01-01", "5", "6", "7", False),
                (1, "2024-01-02", "-0.0000001", None, None, True),
                (3, "2024-01-02", None, None, None, False),
            ]
            stored_equals_worked_out(conn)
            page = coin_store.dashboard(conn, None, None, "24h", False, 10, 0)[2]
            assert [(r["id"], r["change_24h"], r["changes_from"]) for r in page] == [
                (1, "-0.0000001", "cmc_snapshot"), (3, None, "daily_closes")
            ]  # fmt: skip
            page = coin_store.dashboard(conn, date(2024, 1, 1), None, "7d", False, 10, 0)[2]
            assert [(r["id"], r["change_7d"], r["changes_from"]) for r in page] == [
                (1, "-2", "cmc_snapshot"), (2, "6", "cmc_snapshot")
            ]  # fmt: skip
