"""gunicorn settings for `web:`; PORT and WEB_CONCURRENCY come from the environment."""

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
accesslog = "-"
# The default format logs the query string, which carries no secrets here
# (tokens travel in the Authorization header, which is not logged).
