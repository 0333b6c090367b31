"""The uncached dashboard beside the hello-world ceiling, alone (about a minute).

    ./run python -m bench.dashboard [--runs 3] [--seconds 5]

The serve step of ``./run bench`` for just the dashboard: 5000 coins with 32 days of
closes (the same rows as the full benchmark), the API under gunicorn with the
production settings and ``RELAY_ANSWER_CACHE=off``, wrk at 32 connections. Besides the
benchmark's own page (100 rows by 24h change, descending) it asks for pages in other
orders, directions and offsets, and for a one-row answer (convert) for scale, and for
what any request costs before its page: an unknown route's 404 (middleware, no query)
and a price 404 (one query). Each run measures the ceiling right before the
pages, and the ratios are taken run by run.
"""

from __future__ import annotations

import argparse
import statistics

import psycopg

from bench import harness
from bench.__main__ import FIXED, spread

V1 = "/relay-api/v1/relay-out/dashboard"
PAGES = {
    # What any request costs before its page: the middleware alone, then one query.
    "no query (an unknown route's 404)": ["/relay-api/v1/relay-out/no-such-route"],
    "one query (price of a symbol not held, 404)": [
        "/relay-api/v1/relay-out/price?currency=BTCUSDT"
    ],
    "convert (one row, for scale)": ["/relay-api/v1/relay-out/convert?from=USD&to=JPY&amount=100"],
    "24h desc (the bench's page)": [f"{V1}?limit=100&order_by=24h"],
    "every order and direction": [
        f"{V1}?limit=100&order_by={order}&order_type={direction}"
        for order in ("crypto", "price", "24h", "7d", "1m", "24h-volume", "market_cap")
        for direction in ("asc", "desc")
    ],
    "24h desc, offsets 0-4900": [
        f"{V1}?limit=100&order_by=24h&offset={o}" for o in range(0, 5000, 700)
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    harness.require_wrk()
    headers = {"Authorization": f"Bearer {harness.token('relay:out')}"}
    with harness.postgres() as server_url:
        db_url = harness.fresh_database(server_url)
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(FIXED)
            conn.execute("VACUUM ANALYZE coin, coin_daily")
        env = {"DATABASE_URL": db_url, "RELAY_JWT_SECRET": harness.SECRET,
               "RELAY_ANSWER_CACHE": "off"}  # fmt: skip
        with (
            harness.gunicorn("bench.hello:app", {}) as hello,
            harness.gunicorn("relay.app:app", env) as api,
        ):
            # Each run measures the ceiling again right before the pages, so a machine
            # busy with something else weighs on both sides of each ratio alike.
            out = {name: {"rps": [], "p99_ms": [], "ratio": [], "non_2xx": {}}
                   for name in ("hello-world ceiling", *PAGES)}  # fmt: skip
            for _ in range(args.runs):
                ceiling = harness.wrk(hello, ["/hello"], {}, seconds=args.seconds)
                out["hello-world ceiling"]["rps"].append(ceiling["rps"])
                out["hello-world ceiling"]["p99_ms"].append(ceiling["p99_ms"])
                out["hello-world ceiling"]["ratio"].append(1.0)
                for name, paths in PAGES.items():
                    result = harness.wrk(api, paths, headers, seconds=args.seconds)
                    out[name]["rps"].append(result["rps"])
                    out[name]["p99_ms"].append(result["p99_ms"])
                    out[name]["ratio"].append(result["rps"] / ceiling["rps"])
                    for status, n in result["statuses"].items():
                        if not status.startswith("2"):
                            out[name]["non_2xx"][status] = out[name]["non_2xx"].get(status, 0) + n
    print("| page | req/s (min-max) | x ceiling (min-max) | p99 ms | non-2xx |")
    print("| --- | --- | --- | --- | --- |")
    for name, f in out.items():
        rps, ratio = spread(f["rps"]), spread(f["ratio"])
        print(
            f"| {name} | {rps['median']:,.0f} ({rps['min']:,.0f}-{rps['max']:,.0f}) | "
            f"{ratio['median']:.2f} ({ratio['min']:.2f}-{ratio['max']:.2f}) | "
            f"{statistics.median(f['p99_ms']):.2f} | {f['non_2xx'] or ''} |"
        )


if __name__ == "__main__":
    main()
