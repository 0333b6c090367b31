"""The envelope, error rendering and headers every answer shares."""

from __future__ import annotations

import logging
import uuid

import pytest


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
