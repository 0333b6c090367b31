"""Run the service on this machine: gunicorn, and the clock in-process (``serve`` and ``demo``).

gunicorn runs as a child process with the environment given; the clock
(scheduler/local.py) runs in a thread of this one, firing the schedule at the
local server with a ``relay:in`` token minted here. SIGTERM and SIGINT go to
gunicorn; when it has exited, the clock stops too.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from relay import auth
from relay.config import server_settings

ROOT = Path(__file__).resolve().parent.parent
CLOCK_LIFETIME = "30d"  # the clock's relay:in token; a new one each start
DEV_POOL_MAX = "12"  # connections per worker in `serve` and `demo` unless RELAY_DB_POOL_MAX


def serve_environment(env: dict[str, str]) -> dict[str, str]:
    """The development server listens on this machine only (production binds RELAY_BIND).

    Its clock fires every source at once at start, each relay-in holding a connection for
    its lock and more for its symbols: a pool of 4 would keep some waiting past
    RELAY_DB_TIMEOUT, so the development pool is larger unless set.
    """
    return {"RELAY_DB_POOL_MAX": DEV_POOL_MAX, **env, "RELAY_BIND": "127.0.0.1"}


def record_tokens(database_url: str, *tokens: auth.Issued) -> None:
    """Record minted tokens, so that ``relay revoke --sub`` can find them."""
    from relay import db

    with db.make_pool(database_url, open=True) as pool:
        auth.IssuedTokens(pool).record(*tokens)


def local_url(env: Mapping[str, str]) -> str:
    """The URL this machine reaches the development server at (it binds 127.0.0.1)."""
    return f"http://127.0.0.1:{server_settings(env).port}"


def port_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:``port``."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def run(
    env: dict[str, str],
    secret: str,
    *,
    clock: bool = True,
    schedule: Path | None = None,
    on_first_pass: Callable[[], object] | None = None,
    tokens: Sequence[auth.Issued] = (),
) -> int:
    """Serve with gunicorn until it exits (on SIGTERM/SIGINT); the clock with it unless told not.

    ``tokens`` the caller minted are recorded with the clock's own, in one connection.
    """
    port = server_settings(env).port
    if not port_free(port):
        # Another server there would answer /health, and the clock would fire at it.
        print(f"relay: port {port} is in use; set PORT to a free one", file=sys.stderr)
        return 2
    local = None
    record = list(tokens)
    if clock:  # made before gunicorn starts: a bad schedule or an unreachable database
        # stops the command here, leaving no server behind
        from scheduler.clock import SCHEDULE
        from scheduler.local import LocalClock

        logging.getLogger("scheduler").setLevel(logging.INFO)
        issued = auth.issue(secret, "clock", ["relay:in"], auth.parse_ttl(CLOCK_LIFETIME))
        record.append(issued)  # `relay revoke --sub clock` finds it
        local = LocalClock(
            local_url(env),
            issued.token,
            env,
            schedule=schedule or SCHEDULE,
            on_first_pass=on_first_pass,
        )
    if record:
        record_tokens(env["DATABASE_URL"], *record)
    gunicorn: subprocess.Popen | None = None

    def forward(signum, frame):
        if gunicorn is not None:
            gunicorn.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        gunicorn = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "relay.app:app"],
            cwd=ROOT,
            env=env,
        )
        if local is not None:
            local.start()
        return gunicorn.wait()
    finally:
        if local is not None:
            local.stop()
        if gunicorn is not None and gunicorn.poll() is None:  # an error, not a signal, ended it
            gunicorn.terminate()
            gunicorn.wait()
