"""The benchmark: ingest, serve, scale and bulk read, each beside its ceiling.

    ./run bench [--quick] [--runs 3] [--seconds 5]

Starts PostgreSQL, the API under gunicorn with the production settings
(gunicorn.conf.py, WEB_CONCURRENCY=2), a Falcon hello-world under the same
settings, and loopback upstreams serving synthetic data in the real
formats. Every figure is the median of --runs runs with min and max.
Writes bench/results/latest.json and latest.md and prints the table.
``--quick`` stops the scale series at 1 million rows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg

from bench import harness, history, market, migrations
from relay import rollups
from relay.sources.binance import MARKET
from relay.sources.binance.client import parse_klines, read_klines
from relay.sources.coinapi.client import parse_trades, read_trades

RESULTS = Path(__file__).resolve().parent / "results"
BTC = "BITSTAMP_SPOT_BTC_USD"


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def get(url: str, tok: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {tok}"})
    with urllib.request.urlopen(request, timeout=600) as resp:
        return json.loads(resp.read())["data"]


def ingest(db_url: str, api: str, pages: harness.PageServer, runs: int) -> dict:
    """Rows/s through relay-in end to end, and of a bare COPY of the same rows.

    The bare COPY is the database's own speed: the rows already parsed, sent by one
    plain psycopg COPY in one transaction, both in binary (values dumped by psycopg)
    and in text (the digit strings as sent, in lines printed beforehand, so no
    Python step per row is timed); the faster of the two is the one compared.
    """
    tok = harness.token("relay:in")
    out = {}
    trades = ("[" + ",".join(pages.trades[BTC][1]) + "]").encode()
    klines = ("[" + ",".join(pages.klines["ADAUSDT"][1]) + "]").encode()
    cases = {
        "coinapi trades": (
            "symbol_data, symbol",
            f"{api}/relay-api/v1/relay-in?Symbol={BTC}",
            lambda: parse_trades(json.loads(trades, parse_float=Decimal), BTC),
            lambda: read_trades(trades, BTC).lines,
            "COPY symbol_data (uuid, time_exchange, time_coinapi, price, size, taker_side, symbol)"
            " FROM STDIN",
            ["uuid", "timestamptz", "timestamptz", "numeric", "numeric", "text", "int8"],
        ),
        "binance candles": (
            "binance_candle, binance_candle_1h, binance_candle_1d, binance_ticker",
            f"{api}/relay-api/v1/relay-in?Symbol=ADAUSDT&source=binance",
            lambda: parse_klines(json.loads(klines)),
            lambda: read_klines(klines).lines,
            "COPY binance_candle (open_time, close_time, open, high, low, close, volume,"
            " quote_volume, trades, taker_buy_base, taker_buy_quote, symbol, fetched_at)"
            " FROM STDIN",
            ["timestamptz", "timestamptz", *["numeric"] * 6, "int8", "numeric", "numeric",
             "text", "timestamptz"],
        ),
    }  # fmt: skip
    for name, (tables, url, rows_of, lines_of, copy_sql, types) in cases.items():
        relayed, bare = [], {"binary": [], "text": []}
        rows, lines = rows_of(), lines_of()
        assert len(rows) == len(lines)
        for _ in range(runs):
            with psycopg.connect(db_url, autocommit=True) as conn:
                conn.execute(f"TRUNCATE {tables}, relay_run CASCADE")
            started = time.perf_counter()
            data = get(url, tok)
            relayed.append(data["processed"] / (time.perf_counter() - started))
            assert data["complete"], data
        for _ in range(runs):
            for form in bare:
                with psycopg.connect(db_url) as conn:
                    conn.execute(f"TRUNCATE {tables} CASCADE")
                    conn.execute(
                        "INSERT INTO symbol (symbol_id) VALUES (%s) ON CONFLICT DO NOTHING", (BTC,)
                    )
                    symbol = conn.execute(
                        "SELECT id FROM symbol WHERE symbol_id = %s", (BTC,)
                    ).fetchone()[0]
                    conn.commit()
                    extra = (
                        (symbol,) if name.startswith("coinapi") else ("ADAUSDT", datetime.now(UTC))
                    )
                    end = "".join(f"\t{value.isoformat() if isinstance(value, datetime) else value}"
                                  for value in extra) + "\n"  # fmt: skip
                    text = end.join(lines) + end
                    started = time.perf_counter()
                    if form == "binary":
                        with conn.cursor().copy(copy_sql + " (FORMAT BINARY)") as copy:
                            copy.set_types(types)
                            for row in rows:
                                copy.write_row((*row, *extra))
                    else:
                        with conn.cursor().copy(copy_sql) as copy:
                            copy.write(text)
                    conn.commit()
                    bare[form].append(len(rows) / (time.perf_counter() - started))
        form = max(bare, key=lambda f: statistics.median(bare[f]))
        out[name] = {
            "rows": len(rows),
            "relay_in_rows_per_s": spread(relayed),
            "bare_copy_rows_per_s": spread(bare[form]),
            "bare_copy_format": form,
            "bare_copy_binary_rows_per_s": spread(bare["binary"]),
            "bare_copy_text_rows_per_s": spread(bare["text"]),
            "ratio": statistics.median(relayed) / statistics.median(bare[form]),
        }
    return out


FILL = {
    "symbol": "INSERT INTO symbol (symbol_id) VALUES ('BITSTAMP_SPOT_BTC_USD') ON CONFLICT DO NOTHING",
    "trades": """
        INSERT INTO symbol_data (uuid, symbol, time_exchange, time_coinapi, price, size, taker_side)
        SELECT md5(i::text)::uuid, (SELECT id FROM symbol WHERE symbol_id = 'BITSTAMP_SPOT_BTC_USD'),
               t, t, 30000 + i %% 997 + 0.12345678, 0.001 * (i %% 1000), 'BUY'
        FROM generate_series(1, %(n)s) AS i,
             LATERAL (SELECT now() - i * interval '100 milliseconds' AS t) AS x
    """,
    "candles": """
        INSERT INTO binance_candle
        SELECT 'ADAUSDT', t, t + interval '59.999 seconds', p, p, p, p, 10, 10, 7, 5, 5, t
        FROM generate_series(1, %(n)s) AS i,
             LATERAL (SELECT date_trunc('minute', now()) - i * interval '1 minute' AS t,
                             1 + (i %% 997) / 1000.0 AS p) AS x
    """,
}
FIXED = """
    INSERT INTO ecb_rate
    SELECT d::date, c, r FROM generate_series(current_date - 30, current_date, interval '1 day') AS d,
         (VALUES ('USD', 1.0921), ('JPY', 158.54), ('GBP', 0.8612)) AS v(c, r)
    WHERE extract(isodow FROM d) < 6;
    INSERT INTO coin (cmc_id, name, symbol, slug, rank)
    SELECT i, 'Coin ' || i, 'C' || i, 'coin-' || i, i FROM generate_series(1, 5000) AS i;
    INSERT INTO coin_daily (coin_id, day, close, volume, market_cap)
    SELECT c.id, d::date, 1 + c.id * 0.001 + extract(day FROM d) * 0.01, 100, 1000 * c.id
    FROM coin AS c, generate_series(current_date - 31, current_date, interval '1 day') AS d;
"""


def fill(db_url: str, size: int) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE symbol_data, symbol, binance_candle, binance_candle_1h, binance_candle_1d,"
            " binance_ticker CASCADE"
        )
        for query in FILL.values():
            conn.execute(query, {"n": size} if "%(n)s" in query else None)
        rollups.rebuild(conn, MARKET, "ADAUSDT")
        conn.execute("VACUUM ANALYZE symbol_data")
        conn.execute("VACUUM ANALYZE binance_candle")


def serve(api: str, hello: str, runs: int, seconds: int) -> dict:
    tok = harness.token("relay:out")
    headers = {"Authorization": f"Bearer {tok}"}
    v1 = "/relay-api/v1/relay-out"
    routes = {
        "hello-world ceiling": (hello, ["/hello"], {}),
        "price": (api, [f"{v1}/price?currency=ADAUSDT"], headers),
        "profit": (api, [f"{v1}/profit?value=1000&currency=ADAUSDT"], headers),
        "records (100 rows)": (api, [f"{v1}/records?symbol=BTC&limit=100"], headers),
        "dashboard (100 rows)": (api, [f"{v1}/dashboard?limit=100&order_by=24h"], headers),
        "convert": (api, [f"{v1}/convert?from=USD&to=JPY&amount=100"], headers),
    }
    out = {}
    for name, (base, paths, hdrs) in routes.items():
        results = [harness.wrk(base, paths, hdrs, seconds=seconds) for _ in range(runs)]
        bad = {s: n for r in results for s, n in r["statuses"].items() if not s.startswith("2")}
        out[name] = {
            "rps": spread([r["rps"] for r in results]),
            "p50_ms": spread([r["p50_ms"] for r in results]),
            "p99_ms": spread([r["p99_ms"] for r in results]),
            "non_2xx": bad,
        }
    ceiling = out["hello-world ceiling"]
    for figures in out.values():
        figures["rps_ratio"] = figures["rps"]["median"] / ceiling["rps"]["median"]
        figures["p99_ratio"] = figures["p99_ms"]["median"] / ceiling["p99_ms"]["median"]
    return out


def bulk_read(api: str, pages: int = 20) -> dict:
    tok = harness.token("relay:out")
    url = f"{api}/relay-api/v1/relay-out/records?symbol=BTC&limit=10000"
    rows, cursor = 0, None
    started = time.perf_counter()
    for _ in range(pages):
        data = get(url + (f"&cursor={cursor}" if cursor else ""), tok)
        rows += len(data["records"])
        cursor = data["next_cursor"]
        if not cursor:
            break
    return {"rows": rows, "rows_per_s": rows / (time.perf_counter() - started)}


def markdown(result: dict) -> str:
    lines = [f"Benchmark on {result['when']} ({result['mode']}, {result['runs']} runs each)", ""]
    lines += [
        "| ingest | rows | relay-in rows/s | bare COPY rows/s (faster of binary, text) | ratio |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, f in result["ingest"].items():
        lines.append(
            f"| {name} | {f['rows']:,} | {f['relay_in_rows_per_s']['median']:,.0f} "
            f"({f['relay_in_rows_per_s']['min']:,.0f}-{f['relay_in_rows_per_s']['max']:,.0f}) | "
            f"{f['bare_copy_rows_per_s']['median']:,.0f} ({f['bare_copy_format']}: binary "
            f"{f['bare_copy_binary_rows_per_s']['median']:,.0f}, text "
            f"{f['bare_copy_text_rows_per_s']['median']:,.0f}) | {f['ratio']:.2f} |"
        )
    lines += ["", "| rows | route | req/s (min-max) | x ceiling | p50 ms | p99 ms | p99 x ceiling | non-2xx |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for size, routes in [
        *result["serve"].items(),
        *((f"{s} uncached", r) for s, r in result["serve_uncached"].items()),
    ]:
        for name, f in routes.items():
            if "uncached" in size and name.startswith("hello"):
                continue
            lines.append(
                f"| {size} | {name} | {f['rps']['median']:,.0f} "
                f"({f['rps']['min']:,.0f}-{f['rps']['max']:,.0f}) | {f['rps_ratio']:.2f} | "
                f"{f['p50_ms']['median']:.2f} | {f['p99_ms']['median']:.2f} | "
                f"{f['p99_ratio']:.2f} | {f['non_2xx'] or ''} |"
            )
    lines += ["", "| rows | bulk read: records pages of 10,000 | rows/s |", "| --- | --- | --- |"]
    for size, f in result["bulk_read"].items():
        lines.append(f"| {int(size):,} | {f['rows']:,} rows | {f['rows_per_s']:,.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="scale to 1 million rows, not 10")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per run")
    parser.add_argument("--ingest-only", action="store_true", help="only the ingest step")
    args = parser.parse_args()
    if not args.ingest_only:
        harness.require_wrk()
    sizes = [10_000, 1_000_000] + ([] if args.quick else [10_000_000])
    result = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
              "mode": "quick" if args.quick else "full", "runs": args.runs}  # fmt: skip
    pages = harness.PageServer()
    now = datetime.now(UTC)
    pages.add_trades(BTC, now - timedelta(hours=6), 200_000)
    pages.add_klines("ADAUSDT", now - timedelta(minutes=100_000), 100_000)
    with harness.postgres() as server_url:
        db_url = harness.fresh_database(server_url)
        env = {
            "DATABASE_URL": db_url, "RELAY_JWT_SECRET": harness.SECRET,
            "COINAPI_URL": pages.url, "COINAPI_PAGE_LIMIT": "10000",
            "COINAPI_BACKFILL_HOURS": "7", "BINANCE_URL": pages.url,
            "BINANCE_BACKFILL_HOURS": str(100_000 // 60 + 2), "RELAY_IN_BUDGET_S": "600",
        }  # fmt: skip
        result["serve"], result["serve_uncached"], result["bulk_read"] = {}, {}, {}
        with harness.gunicorn("relay.app:app", env) as api:
            print("ingest...", flush=True)
            result["ingest"] = ingest(db_url, api, pages, args.runs)
            if not args.ingest_only:
                print("market: 300 symbols, concurrent and serial...", flush=True)
                result["market"] = market.measure(harness.fresh_database(server_url))
                print("history: 2 years of minutes, candles at each interval...", flush=True)
                result["history"] = history.measure(harness.fresh_database(server_url))
            if not args.ingest_only and not args.quick:
                print("migrations and retention at 10 million rows...", flush=True)
                result["migrations"] = migrations.measure(server_url)
            if not args.ingest_only:
                with psycopg.connect(db_url, autocommit=True) as conn:
                    conn.execute("TRUNCATE ecb_rate, coin, coin_daily CASCADE")
                    conn.execute(FIXED)
                with (
                    harness.gunicorn("bench.hello:app", {}) as hello,
                    harness.gunicorn("relay.app:app", {**env, "RELAY_ANSWER_CACHE": "off"}) as cold,
                ):
                    for size in sizes:
                        print(f"serve at {size:,} rows...", flush=True)
                        fill(db_url, size)
                        result["serve"][str(size)] = serve(api, hello, args.runs, args.seconds)
                        result["serve_uncached"][str(size)] = serve(
                            cold, hello, args.runs, args.seconds
                        )
                        result["bulk_read"][str(size)] = bulk_read(cold)
    pages.close()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(result, indent=2))
    table = markdown(result)
    if "market" in result:
        table += "\n" + market.table(result["market"]) + "\n" + history.table(result["history"])
    if "migrations" in result:
        table += "\nmigrations and retention at 10 million rows\n\n" + result["migrations"]
    (RESULTS / "latest.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
