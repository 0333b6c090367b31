"""What shared caches may keep: nothing that needed a token; ETags and 304 still work."""

from __future__ import annotations

import pytest

from relay import caching, openapi
from tests.conftest import bearer
from tests.rows import a_little_of_everything

API = openapi.API
# A query that each token-gated GET route answers (most of them with data).
QUERIES = {
    "/metrics": {},
    f"{API}/relay-in": {},
    f"{API}/relay-in/runs": {},
    f"{API}/relay-out": {"Symbol": "BTC"},
    f"{API}/relay-out/records": {"symbol": "BTC"},
    f"{API}/relay-out/symbols": {},
    f"{API}/relay-out/price": {"currency": "BTCUSDT"},
    f"{API}/relay-out/profit": {"currency": "BTCUSDT", "value": "1000"},
    f"{API}/relay-out/candles": {"symbol": "BTCUSDT"},
    f"{API}/relay-out/dashboard": {},
    f"{API}/relay-out/search": {"name": "B"},
    f"{API}/relay-out/coins/{{coin_id}}/logo": {},
    f"{API}/relay-out/assets/{{symbol}}/logo": {},
    f"{API}/relay-out/rates": {"date": "2018-06-01"},
    f"{API}/relay-out/rates/series": {"start": "2018-06-01", "end": "2018-06-01"},
    f"{API}/relay-out/convert": {"from": "USD", "to": "JPY", "date": "2018-06-01"},
}
GATED = [
    path
    for path, operations in openapi.document()["paths"].items()
    if "get" in operations and operations["get"]["security"]
]
CACHEABLE = {  # answered with a Cache-Control that lets a browser keep them
    f"{API}/relay-out/coins/{{coin_id}}/logo",
    f"{API}/relay-out/assets/{{symbol}}/logo",
    f"{API}/relay-out/rates",
    f"{API}/relay-out/rates/series",
    f"{API}/relay-out/convert",
}


def test_every_token_gated_get_route_is_listed():
    assert set(GATED) == set(QUERIES)


@pytest.mark.parametrize("path", GATED)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_answers_that_need_a_token_are_private_and_vary_by_it(app, conn, path, method):
    a_little_of_everything(conn)
    url = path.replace("{symbol}", "B").replace("{coin_id}", "1")  # coin B is coin 1
    headers = bearer("relay:in", "relay:out", "relay:metrics")
    first = app.request(url + "?" + "&".join(f"{k}={v}" for k, v in QUERIES[path].items()),
                        method=method, headers=headers, expect_errors=True)  # fmt: skip
    answers = [first]
    if path in CACHEABLE:
        assert first.status_int == 200, first
        assert "max-age=" in first.headers["Cache-Control"]
        etag = first.headers["ETag"]
        again = app.request(first.request.url, method=method,
                            headers={**headers, "If-None-Match": etag}, status=304)  # fmt: skip
        assert again.headers["ETag"] == etag
        answers.append(again)
    answers.append(app.request(first.request.url, method=method, expect_errors=True))  # 401
    for resp in answers:
        assert "public" not in resp.headers["Cache-Control"], (resp, resp.headers)
        assert "Authorization" in [v.strip() for v in resp.headers.get("Vary", "").split(",")]
    if path in CACHEABLE:
        assert first.headers["Cache-Control"].startswith("private, max-age=")


class Forgetful:
    auth_scope = "relay:out"

    def on_get(self, req, resp):
        caching.send(req, resp, b"x", content_type="text/plain", cache_control="public, max-age=9")


def test_a_route_that_says_public_behind_a_token_is_made_private(app):
    app.app.add_route("/forgetful", Forgetful())
    resp = app.get("/forgetful", headers=bearer("relay:out"))
    assert resp.headers["Cache-Control"] == "private, max-age=9"
    assert resp.headers["Vary"] == "Authorization"


def test_public_answers_stay_public(app):
    assert app.get("/docs/static/swagger-ui.css").headers["Cache-Control"].startswith("public")
    assert "Vary" not in app.get("/health").headers
