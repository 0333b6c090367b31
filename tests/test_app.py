"""The envelope, error rendering and headers every answer shares."""

from __future__ import annotations

import logging
import uuid

import falcon.inspect
import pytest

from relay.openapi import UNSAFE_GETS
from relay.resources import web
from tests.conftest import bearer


class Boom:
    auth_scope = None

    def on_get(self, req, resp):
        raise RuntimeError("secret internals")


def test_unknown_route_is_404_in_the_envelope(app):
    resp = app.get("/nowhere", status=404)
    assert resp.content_type == "application/json"
    assert resp.json == {"code": 404, "message": "404 Not Found", "data": {}}


def test_wrong_method_is_405_in_the_envelope(app, out_headers):
    resp = app.delete("/relay-api/v1/relay-out/records", headers=out_headers, status=405)
    assert resp.json["code"] == 405
    assert resp.json["data"] == {}
    assert "GET" in resp.headers["Allow"]


def test_a_bug_is_500_with_a_request_id_and_no_stack_trace(app, caplog):
    app.app.add_route("/boom", Boom())
    with caplog.at_level(logging.ERROR):
        resp = app.get("/boom", status=500)
    assert resp.json["message"] == "Internal Server Error"
    request_id = resp.json["data"]["request_id"]
    assert request_id == resp.headers["X-Request-Id"]
    assert "secret internals" not in resp.text
    assert "Traceback" not in resp.text
    # Logged once, with the traceback, for the operator.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info


def test_request_id_is_echoed_when_sane_and_made_otherwise(app):
    resp = app.get("/health", headers={"X-Request-Id": "abc-123"})
    assert resp.headers["X-Request-Id"] == "abc-123"
    resp = app.get("/health", headers={"X-Request-Id": "bad id\twith tabs"})
    assert resp.headers["X-Request-Id"] != "bad id\twith tabs"
    assert len(resp.headers["X-Request-Id"]) == 32
    made = {app.get("/health").headers["X-Request-Id"] for _ in range(50)}
    assert len(made) == 50
    assert all(uuid.UUID(hex=m).version == 4 for m in made)


@pytest.mark.parametrize("path", ["/health", "/nowhere"])
def test_every_answer_says_nosniff(app, path):
    resp = app.get(path, expect_errors=True)
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_docs_page_and_its_assets_are_served_by_the_app(app):
    page = app.get("/docs")
    assert page.content_type == "text/html"
    assert "/openapi.json" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN
    script = app.get("/docs/static/swagger-ui-bundle.js")
    assert script.status_int == 200 and len(script.body) > 100_000
    assert script.headers["Cache-Control"] == "public, max-age=86400"
    assert app.get("/docs/static/swagger-ui.css").content_type == "text/css"
    app.get("/docs/static/..%2F..%2F__init__.py", status=404)
    app.get("/docs/static/missing.js", status=404)


# Headers a HEAD must answer exactly as GET does (the request id, dates and the
# length of a body that changes between calls, /metrics', may differ).
SAME_HEADERS = ("Content-Type", "Cache-Control", "ETag", "Vary", "Allow", "WWW-Authenticate",
                "Content-Security-Policy", "X-Content-Type-Options")  # fmt: skip


def test_head_answers_every_get_route_as_get_does_without_the_body(app):
    info = falcon.inspect.inspect_app(app.app)
    paths = [
        route.path.replace("{symbol}", "BTC").replace("{coin_id}", "1")
        for route in info.routes
        if any(m.method == "GET" for m in route.methods) and route.path not in UNSAFE_GETS
    ]
    version = web.fingerprint(web.WEB / "app.js")
    sink_files = {"/static/": f"/static/app.js?v={version}", "/docs/static/": "/docs/static/x.js"}
    assert {sink.prefix for sink in info.sinks} == set(sink_files)  # a new sink: name a file
    paths += [*sink_files.values(), "/docs/static/swagger-ui.css", "/nowhere"]
    assert {"/", "/health", "/openapi.json", "/docs", "/metrics"} <= set(paths)
    headers = bearer("relay:in", "relay:out", "relay:metrics")
    ok = 0
    for path in paths:
        got = app.get(path, headers=headers, expect_errors=True)
        head = app.head(path, headers=headers, expect_errors=True)
        assert head.status_int == got.status_int, (path, got, head)
        assert head.body == b"", path
        for name in SAME_HEADERS:
            assert head.headers.get(name) == got.headers.get(name), (path, name)
        ok += got.status_int == 200
    assert ok >= 9  # the public pages, the document, /metrics, the static files, lists


def test_head_never_runs_a_get_that_changes_data(app, conn, httpserver):
    """GET /relay-in relays data in: HEAD is refused rather than relaying."""
    assert {"/relay-api/v1/relay-in"} == UNSAFE_GETS
    resp = app.head(
        "/relay-api/v1/relay-in?Symbol=BTC", headers=bearer("relay:in"), expect_errors=True
    )
    assert resp.status_int == 405
    assert httpserver.log == []  # no upstream was asked
    assert conn.execute("SELECT count(*) FROM relay_run").fetchone()[0] == 0
