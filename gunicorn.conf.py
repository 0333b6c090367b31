"""gunicorn settings for `web:`; RELAY_BIND, PORT and WEB_CONCURRENCY come from the environment.

Threads after Heroku's own Python example (heroku/python-getting-started): gthread, five
threads a worker, keep-alive longer than the router's. The worker class is gthread's with
one change (relay/serving.py): no thread is given to a request before all of it is in.
"""

import os
import tempfile

from relay.config import REQUEST_LINE_LIMIT, server_settings

_server = server_settings()

# 0.0.0.0 on Heroku (the router reaches the dyno on PORT); `python -m relay serve` sets
# RELAY_BIND=127.0.0.1 so a development server is reachable from this machine only.
bind = _server.bind
workers = _server.workers
worker_class = "relay.serving.RelayWorker"
threads = 5
# Idle keep-alive connections wait in the poller, holding no thread. Longer than the Heroku
# router's 90 s idle timeout, so the router, not us, closes them (no race on a reused one).
keepalive = 95
# With threads, this is only the worker's heartbeat: its main loop reports at least once a
# second, and a worker silent for this long is stuck. A slow request cannot trip it.
timeout = 20
# SIGTERM lets requests in flight finish (a relay-in stops fetching after its 20 s budget);
# Heroku sends SIGKILL 30 s after SIGTERM.
graceful_timeout = 25
# Our query limit (RELAY_MAX_QUERY_BYTES, at most MAX_QUERY_BYTES_CEILING) sits under this,
# so an over-long query reaches the app and gets our 414 envelope, not gunicorn's page.
limit_request_line = REQUEST_LINE_LIMIT
# No preload_app: each worker builds its own app and opens its own pool
# after the fork, so no connection is ever shared across processes.
preload_app = False
# relay logs one JSON line per request itself (relay.observe); no second access log.
accesslog = None

# Workers share metric values through files here, so /metrics adds up all of
# them whichever worker answers; a fresh folder each time the server starts.
# It must be set before prometheus_client is first imported (it picks its value
# store at import), hence here, in the master, before any worker exists.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="relay-metrics-"))


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


# gunicorn 27's control socket is one path per user ($HOME/.gunicorn/gunicorn.ctl): two
# servers on one machine (serve beside the tests, two benches) would take it from each
# other. Nothing here uses it.
control_socket_disable = True
