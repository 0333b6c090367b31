"""Metrics and structured logs: what an operator sees of the service."""

from __future__ import annotations

import json
import logging
import random
import re
import string
from datetime import UTC, datetime

import pytest

from relay.observe import JsonFormatter
from tests.conftest import SECRET, bearer
from tests.upstreams import FakeCoinAPI, make_trades

NOW = datetime(2022, 1, 1, 12, tzinfo=UTC)


def metric(text: str, name: str, **labels) -> float:
    """The value of one sample in Prometheus' text format (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        got = ",".join(sorted((match.group(2) or "").split(","))) if match.group(2) else ""
        if got == want:
            return float(match.group(3))
    return 0.0


def test_metrics_need_the_metrics_scope(app):
    app.get("/metrics", status=401)
    app.get("/metrics", headers=bearer("relay:out"), status=403)
    app.get("/metrics", headers=bearer("relay:in"), status=403)
    resp = app.get("/metrics", headers=bearer("relay:metrics"))
    assert resp.content_type.startswith("text/plain")


def test_metrics_follow_requests_and_relay_in_runs(
    make_app, config, httpserver, out_headers, in_headers
):
    coinapi = FakeCoinAPI(httpserver)
    coinapi.add("BITSTAMP_SPOT_BTC_USD", make_trades(NOW.replace(hour=1), 7))
    app = make_app(config, now=lambda: NOW)
    scrape = bearer("relay:metrics")
    route = "/relay-api/v1/relay-out/records"

    before = app.get("/metrics", headers=scrape).text
    for _ in range(3):
        app.get(route, {"symbol": "BTC"}, headers=out_headers, status=404)
    app.get("/relay-api/v1/relay-in", {"Symbol": "BTC"}, headers=in_headers, status=201)
    coinapi.fail_on_call = {2: (500, "{}"), 3: (500, "{}"), 4: (500, "{}")}
    app.get("/relay-api/v1/relay-in", {"Symbol": "BTC"}, headers=in_headers, status=502)
    after = app.get("/metrics", headers=scrape).text

    labels = {"route": route, "method": "GET", "status": "404"}
    assert (
        metric(after, "relay_http_requests_total", **labels)
        - metric(before, "relay_http_requests_total", **labels)
        == 3
    )
    assert (
        metric(after, "relay_http_request_duration_seconds_count", route=route, method="GET") >= 3
    )
    assert metric(after, "relay_relay_in_runs_total", source="coinapi", outcome="succeeded") == 1
    assert metric(after, "relay_relay_in_runs_total", source="coinapi", outcome="failed") == 1
    assert metric(after, "relay_relay_in_rows_total", source="coinapi") == 7
    assert "relay_db_pool_connections_in_use" in after
    assert "relay_db_pool_requests_waiting" in after


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture
def log_lines():
    handler = Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.INFO)
    yield handler.lines
    root.removeHandler(handler)
    root.setLevel(old)


def test_one_json_line_per_request_and_per_run_with_no_secret(
    make_app, config, httpserver, log_lines, in_headers, out_headers
):
    coinapi = FakeCoinAPI(httpserver)
    coinapi.add("BITSTAMP_SPOT_BTC_USD", make_trades(NOW.replace(hour=1), 2))
    app = make_app(config, now=lambda: NOW)
    app.get("/relay-api/v1/relay-in", {"Symbol": "BTC"}, headers=in_headers, status=201)
    app.get("/relay-api/v1/relay-out/records", {"symbol": "BTC"}, headers=out_headers,
            extra_environ={"HTTP_X_REQUEST_ID": "trace-42"})  # fmt: skip
    app.get("/relay-api/v1/relay-out/records", {"symbol": "BTC"}, status=401)

    entries = [json.loads(line) for line in log_lines]  # every line parses
    requests = [e for e in entries if e["logger"] == "relay.access"]
    assert len(requests) == 3
    traced = next(e for e in requests if e.get("request_id") == "trace-42")
    assert traced["method"] == "GET"
    assert traced["route"] == "/relay-api/v1/relay-out/records"
    assert traced["status"] == 200 and traced["sub"] == "test"
    assert traced["duration_ms"] > 0 and traced["time"].endswith("+00:00")
    runs = [e for e in entries if e.get("outcome") == "succeeded"]
    assert runs and runs[0]["source"] == "coinapi" and runs[0]["processed"] == 2
    text = "\n".join(log_lines)
    for secret in (SECRET, config.source("coinapi").key, in_headers["Authorization"].split()[1]):
        assert secret not in text


def test_static_files_share_one_route_label_and_unknown_paths_another(app):
    app.get("/static/app.js")
    app.get("/static/app.css")
    app.get("/static/no-such-file.js", status=404)
    app.get("/no/such/route/at/all", status=404)
    text = app.get("/metrics", headers=bearer("relay:metrics")).text

    def count(route: str, status: str) -> float:
        return metric(text, "relay_http_requests_total", route=route, method="GET", status=status)

    assert count("/static/{file}", "200") == 2
    assert count("/static/{file}", "404") == 1
    assert count("unmatched", "404") == 1
    assert "app.js" not in text and "no-such-file" not in text


def test_the_pool_gauge_is_read_when_scraped(app, pool):
    scrape = bearer("relay:metrics")
    app.get("/metrics", headers=scrape)  # the requests before sample a pool with none lent
    with pool.connection():
        held = app.get("/metrics", headers=scrape).text
    assert metric(held, "relay_db_pool_connections_in_use") == 1
    assert metric(app.get("/metrics", headers=scrape).text, "relay_db_pool_connections_in_use") == 0


class OddStatus:
    auth_scope = None

    def on_get(self, req, resp):
        resp.status = 299  # no status relay answers with: counted as "other"


@pytest.mark.filterwarnings("ignore::webtest.lint.WSGIWarning")  # the invented methods
def test_labels_come_from_fixed_sets_whatever_the_client_sends(app, log_lines):
    app.app.add_route("/odd", OddStatus())
    rng = random.Random(10)
    invented = set()
    for _ in range(500):
        method = "".join(rng.choices(string.ascii_uppercase, k=rng.randint(3, 12)))
        path = rng.choice(["/", "/health", "/metrics"]) + "".join(
            rng.choices(string.ascii_letters + string.digits + "/._-", k=rng.randint(1, 30))
        )
        if method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
            continue
        invented.add(method)
        app.request(path, method=method, expect_errors=True)
    app.get("/odd", status=299)
    text = app.get("/metrics", headers=bearer("relay:metrics")).text

    samples = [line for line in text.splitlines() if line.startswith("relay_http_requests_total{")]
    # Every invented method is "other"; random paths match no route ("unmatched", answered
    # 404) except those Falcon reads as /health or /metrics with a trailing part, which
    # it also answers 404; the 299 is "other". The scrape itself is counted after it.
    assert sorted(samples) == [
        'relay_http_requests_total{method="GET",route="/odd",status="other"} 1.0',
        'relay_http_requests_total{method="other",route="unmatched",status="404"} '
        f"{len(invented)}.0",
    ]
    access = [json.loads(line) for line in log_lines if '"relay.access"' in line]
    assert len(access) == len(invented) + 2  # and /odd and the scrape
    assert {e["method"] for e in access} == {"other", "GET"}
    assert {e["message"].split()[0] for e in access} == {"other", "GET"}
