"""gunicorn settings for `web:`; PORT and WEB_CONCURRENCY come from the environment."""

import os
import tempfile

from relay.config import server_settings

_port, _workers = server_settings()

bind = f"0.0.0.0:{_port}"
workers = _workers
worker_class = "sync"
# Heroku's router gives up at 30 s; a worker stuck longer than that is stuck.
timeout = 35
graceful_timeout = 25
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
