"""What an operator sees: one JSON log line per request and per relay-in, and metrics.

Metrics are Prometheus' text format (prometheus-client). Under gunicorn
every worker writes its values to ``PROMETHEUS_MULTIPROC_DIR`` (set by
gunicorn.conf.py), and /metrics adds up all workers; without it (tests, a
single process) the worker's own values are served.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import falcon
import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

log = logging.getLogger("relay.access")

# Label values come from fixed sets only: a client inventing methods, paths or
# statuses must not grow the metrics (every label set is a series for ever).
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
STATUSES = frozenset(
    (200, 201, 204, 206, 304, 400, 401, 403, 404, 405, 409, 413, 414, 415, 416, 422, 429,
     500, 502, 503, 504)
)  # fmt: skip
OTHER = "other"


def method_label(method: str) -> str:
    return method if method in METHODS else OTHER


def status_label(status: int) -> str:
    return str(status) if status in STATUSES else OTHER


# Fields a log record may carry as ``extra``; everything else stays out of the line.
LOG_FIELDS = (
    "request_id", "method", "route", "status", "duration_ms", "sub",
    "source", "symbols", "outcome", "processed", "complete", "error",
)  # fmt: skip


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the known extras."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in LOG_FIELDS:
            if hasattr(record, field):
                line[field] = getattr(record, field)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class Metrics:
    """The service's instruments, in a registry of their own (one per app)."""

    def __init__(self, *, multiprocess_dir: str | None = None):
        self.multiprocess = multiprocess_dir is not None
        # In multiprocess mode values live in files and the default registry is not
        # scraped; otherwise a registry per app keeps tests independent.
        self.registry = None if self.multiprocess else CollectorRegistry()
        kw = {"registry": self.registry} if self.registry is not None else {}
        self.requests = Counter(
            "relay_http_requests", "HTTP requests answered", ["route", "method", "status"], **kw
        )
        self.latency = Histogram(
            "relay_http_request_duration_seconds",
            "Time to answer a request",
            ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            **kw,
        )
        self.runs = Counter(
            "relay_relay_in_runs",
            "Relay-in runs by source and outcome",
            ["source", "outcome"],
            **kw,
        )
        self.rows = Counter("relay_relay_in_rows", "Rows stored by relay-in", ["source"], **kw)
        gauge_kw = {**kw, "multiprocess_mode": "livesum"} if self.multiprocess else kw
        self.pool_in_use = Gauge(
            "relay_db_pool_connections_in_use", "Database connections lent out", **gauge_kw
        )
        self.pool_waiting = Gauge(
            "relay_db_pool_requests_waiting", "Requests waiting for a connection", **gauge_kw
        )

    def exposition(self) -> bytes:
        if self.multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)

    def observe_pool(self, pool) -> None:
        stats = pool.get_stats()
        self.pool_in_use.set(stats.get("pool_size", 0) - stats.get("pool_available", 0))
        self.pool_waiting.set(stats.get("requests_waiting", 0))

    def relay_in(self, source: str, outcome: str, rows: int) -> None:
        self.runs.labels(source, outcome).inc()
        if rows:
            self.rows.labels(source).inc(rows)


class ObserveMiddleware:
    """Time every request; count it, log it as one JSON line."""

    # The pool gauges are sampled at most this often per worker (and on every scrape).
    POOL_SAMPLE_S = 0.25

    def __init__(self, metrics: Metrics, pool):
        self.metrics = metrics
        self.pool = pool
        self._next_pool_sample = float("-inf")

    def process_request(self, req, resp):
        req.context.started = time.perf_counter()

    def process_response(self, req, resp, resource, req_succeeded):
        started = getattr(req.context, "started", None)
        if started is None:
            return
        finished = time.perf_counter()
        elapsed = finished - started
        # A template, or the fixed label a sink (static files) names itself with.
        route = req.uri_template or getattr(req.context, "route", None) or "unmatched"
        status = resp.status_code
        method = method_label(req.method)
        self.metrics.requests.labels(route, method, status_label(status)).inc()
        self.metrics.latency.labels(route, method).observe(elapsed)
        if finished >= self._next_pool_sample:
            self.metrics.observe_pool(self.pool)
            self._next_pool_sample = finished + self.POOL_SAMPLE_S
        principal = getattr(req.context, "principal", None)
        log.info(
            "%s %s %d",
            method,
            route,
            status,
            extra={
                "request_id": getattr(req.context, "request_id", None),
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
                "sub": principal.sub if principal else None,
            },
        )


class MetricsResource:
    """GET /metrics: Prometheus text format; route names and volumes are not public."""

    auth_scope = "relay:metrics"

    def __init__(self, metrics: Metrics, pool):
        self._metrics = metrics
        self._pool = pool

    def on_get(self, req, resp):
        self._metrics.observe_pool(self._pool)  # this worker's pool, as of now
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = self._metrics.exposition()
        resp.status = falcon.HTTP_200
