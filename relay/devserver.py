"""Run the service on this machine: gunicorn, and the clock in-process (``serve`` and ``demo``).

gunicorn runs as a child process with the environment given; the clock
(scheduler/local.py) runs in a thread of this one, firing the schedule at the
local server with a ``relay:in`` token minted here. SIGTERM and SIGINT go to
gunicorn; when it has exited, the clock stops too.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from relay import auth
from relay.config import server_settings

ROOT = Path(__file__).resolve().parent.parent
CLOCK_LIFETIME = "30d"  # the clock's relay:in token; a new one each start


def local_url(env: Mapping[str, str]) -> str:
    """The URL this machine reaches the development server at (it binds 127.0.0.1)."""
    return f"http://127.0.0.1:{server_settings(env).port}"


def run(
    env: dict[str, str],
    secret: str,
    *,
    clock: bool = True,
    schedule: Path | None = None,
    on_first_pass: Callable[[], object] | None = None,
) -> int:
    """Serve with gunicorn until it exits (on SIGTERM/SIGINT); the clock with it unless told not."""
    gunicorn = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "relay.app:app"],
        cwd=ROOT,
        env=env,
    )

    def forward(signum, frame):
        gunicorn.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    local = None
    if clock:
        from scheduler.clock import SCHEDULE
        from scheduler.local import LocalClock

        logging.getLogger("scheduler").setLevel(logging.INFO)
        token = auth.mint_token(secret, "clock", ["relay:in"], auth.parse_ttl(CLOCK_LIFETIME))
        local = LocalClock(
            local_url(env), token, env, schedule=schedule or SCHEDULE, on_first_pass=on_first_pass
        ).start()
    try:
        return gunicorn.wait()
    finally:
        if local is not None:
            local.stop()
