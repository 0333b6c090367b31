"""Load check: mixed relay-out traffic while relay-in runs, then count the damage.

    ./run load [--seconds 25] [--connections 32]

Serves the API under gunicorn with the production settings, fills the
tables, fires CoinAPI relay-in in a loop against a loopback CoinAPI that
makes new trades all the time, and meanwhile drives wrk over nine relay-out
routes. Passes when wrk sent at least 20,000 requests, no answer was a 5xx,
and the stored trades are exactly the upstream's, none lost or doubled.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import urllib.error
import urllib.request
import uuid

import psycopg
from pytest_httpserver import HTTPServer

from bench import harness
from bench.__main__ import FILL, FIXED
from tests.upstreams import FakeCoinAPI

BTC = "BITSTAMP_SPOT_BTC_USD"


def relay_in(api: str, tok: str) -> int:
    """Fire one CoinAPI relay-in; return its HTTP status."""
    request = urllib.request.Request(
        f"{api}/relay-api/v1/relay-in/coinapi", method="POST", data=b"",
        headers={"Authorization": f"Bearer {tok}"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def relay_in_loop(api: str, stop: threading.Event, statuses: dict) -> None:
    tok = harness.token("relay:in")
    while not stop.is_set():
        status = relay_in(api, tok)
        statuses[status] = statuses.get(status, 0) + 1
        stop.wait(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=25)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    upstream = HTTPServer(host="127.0.0.1", threaded=True)
    upstream.start()
    FakeCoinAPI(upstream, key="load-key", synthetic_per_s=50)
    v1 = "/relay-api/v1/relay-out"
    paths = [
        f"{v1}/price?currency=ADAUSDT",
        f"{v1}/profit?value=1000&currency=ADAUSDT",
        f"{v1}/records?symbol=BTC&limit=100",
        f"{v1}/candles?symbol=ADAUSDT&interval=1h",
        f"{v1}/dashboard?limit=100&order_by=market_cap",
        f"{v1}/search?name=coin%201",
        f"{v1}/rates?symbols=USD,JPY",
        f"{v1}/convert?from=USD&to=JPY&amount=100",
        "/health",
    ]
    with harness.postgres() as server_url:
        db_url = harness.fresh_database(server_url)
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(FILL["candles"], {"n": 100_000})
            conn.execute(FIXED)
            conn.execute("VACUUM ANALYZE")
        env = {
            "DATABASE_URL": db_url, "RELAY_JWT_SECRET": harness.SECRET,
            "COINAPI_URL": upstream.url_for("/").rstrip("/"), "COINAPI_KEY": "load-key",
            "COINAPI_BACKFILL_HOURS": "1",
        }  # fmt: skip
        with harness.gunicorn("relay.app:app", env) as api:
            # One relay-in first, so the records route has a symbol from the start.
            relay_in(api, harness.token("relay:in"))
            stop, relay_statuses = threading.Event(), {}
            loop = threading.Thread(target=relay_in_loop, args=(api, stop, relay_statuses))
            loop.start()
            tok = harness.token("relay:out")
            result = harness.wrk(
                api, paths, {"Authorization": f"Bearer {tok}"},
                seconds=args.seconds, connections=args.connections,
            )  # fmt: skip
            stop.set()
            loop.join(120)
        with psycopg.connect(db_url) as conn:
            count, distinct, low, high = conn.execute(
                "SELECT count(*), count(DISTINCT uuid), min(uuid::text), max(uuid::text) "
                "FROM symbol_data"
            ).fetchone()
    upstream.stop()
    # The synthetic trades are numbered by their uuid: every number between the first
    # and the last stored must be there, once.
    expected = uuid.UUID(high).int - uuid.UUID(low).int + 1 if count else 0
    server_errors = {s: n for s, n in result["statuses"].items() if s.startswith("5")}
    report = {
        "requests": result["requests"],
        "rps": round(result["rps"]),
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "statuses": result["statuses"],
        "socket_errors": result["socket_errors"],
        "relay_in_calls": relay_statuses,
        "trades": {"stored": count, "distinct": distinct, "expected": expected},
    }
    print(json.dumps(report, indent=2))
    ok = (
        result["requests"] >= 20_000
        and not server_errors
        and not any(s >= 500 for s in relay_statuses)
        and count == distinct == expected
        and count > 0
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
