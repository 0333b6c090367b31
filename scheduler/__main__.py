"""``python -m scheduler fire SOURCE [--symbols A,B]`` and ``python -m scheduler run``.

Both read ``RELAY_URL`` (the API's base URL) and ``RELAY_TOKEN`` (a token
with the relay:in scope) from the environment.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from relay.sources.registry import BY_NAME
from scheduler.clock import SCHEDULE, Clock, Job, load_schedule
from scheduler.fire import fire


def settings() -> tuple[str, str]:
    url = os.environ.get("RELAY_URL", "").strip()
    token = os.environ.get("RELAY_TOKEN", "").strip()
    missing = [name for name, value in (("RELAY_URL", url), ("RELAY_TOKEN", token)) if not value]
    if missing:
        raise SystemExit(f"scheduler: {' and '.join(missing)} must be set")
    if not url.startswith(("http://", "https://")):
        raise SystemExit("scheduler: RELAY_URL must be an http(s) URL")
    return url, token


def cmd_fire(args) -> int:
    url, token = settings()
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()] if args.symbols else None
    outcome = fire(url, token, args.source, symbols, deadline_s=args.deadline)
    print(json.dumps(outcome.as_dict()), flush=True)
    return 0 if outcome.ok else 1


def cmd_run(args) -> int:
    url, token = settings()
    jobs = load_schedule(args.schedule)

    def action(job: Job, stop: threading.Event) -> None:
        outcome = fire(
            url, token, job.source, job.symbols or None, deadline_s=args.deadline, stop=stop
        )
        print(json.dumps(outcome.as_dict()), flush=True)

    clock = Clock(jobs, action, fire_at_start=True)
    done = threading.Event()

    def on_signal(signum, frame):
        logging.getLogger("scheduler").info("signal %d: finishing running calls", signum)
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    clock.start()
    done.wait()
    clock.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m scheduler", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("fire", help="fire one relay-in call and print its outcome as JSON")
    one.add_argument("source", help=", ".join(BY_NAME))
    one.add_argument("--symbols", help="comma-separated, e.g. BTC,ETH")
    one.add_argument("--deadline", type=float, default=300.0, help="seconds in all (default 300)")
    one.set_defaults(func=cmd_fire)
    run = sub.add_parser("run", help="fire the schedule's jobs on time until SIGTERM")
    run.add_argument("--schedule", default=SCHEDULE, type=Path)
    run.add_argument("--deadline", type=float, default=300.0, help="per firing, seconds")
    run.set_defaults(func=cmd_run)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
