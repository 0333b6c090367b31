"""Query parameters at the edge: extreme dates and times are 400 naming the parameter."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from relay import openapi
from tests.conftest import bearer
from tests.rows import a_little_of_everything

API = openapi.API
# What each route needs besides the date or time under test.
REQUIRED = {
    f"{API}/relay-out": {"Symbol": "BTC"},
    f"{API}/relay-out/records": {"symbol": "BTC"},
    f"{API}/relay-out/candles": {"symbol": "BTCUSDT"},
    f"{API}/relay-out/dashboard": {},
    f"{API}/relay-out/rates": {},
    f"{API}/relay-out/rates/series": {"start": "2018-06-01"},
    f"{API}/relay-out/convert": {"from": "USD", "to": "JPY"},
}
# Every GET parameter that takes a date or a date-time, as the document declares them.
DATE_PARAMS = [
    (path, p["name"])
    for path, ops in openapi.document()["paths"].items()
    if "get" in ops
    for p in ops["get"]["parameters"]
    if p["in"] == "query" and p["name"] in ("start", "end", "date")
]
# Time parameters: these parse a date-time, so any out-of-range moment is theirs to refuse.
TIME_PARAMS = {
    (f"{API}/relay-out{route}", name)
    for route in ("", "/records", "/candles")
    for name in ("start", "end")
}
EXTREMES = [
    "0001-01-01",
    "9999-12-31",
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00+23:59",
    "0001-01-01T00:00:00-23:59",
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:59+23:59",
    "1969-12-31T23:59:59Z",
    "2200-01-01",
]


def test_every_date_parameter_is_covered():
    assert {path for path, _ in DATE_PARAMS} == set(REQUIRED)
    assert set(DATE_PARAMS) >= TIME_PARAMS


@pytest.fixture
def data(conn):
    """So each route reaches its arithmetic and its queries."""
    a_little_of_everything(conn)


@pytest.mark.parametrize(("path", "name"), DATE_PARAMS, ids=[f"{p}:{n}" for p, n in DATE_PARAMS])
def test_extreme_dates_and_times_are_400_naming_the_parameter(data, app, path, name):
    for value in EXTREMES:
        query = {**REQUIRED[path], name: value}
        resp = app.get(path, query, headers=bearer("relay:out"), expect_errors=True)
        if (path, name) in TIME_PARAMS:
            assert resp.status_int == 400, (value, resp)
        else:  # the ECB routes answer "no rates before 1999-01-04" with their documented 404
            assert resp.status_int in (400, 404), (value, resp)
        if resp.status_int == 400:
            assert f"{name} parameter" in resp.json["message"], (value, resp.json)
        else:
            assert "1999-01-04" in resp.json["message"], (value, resp.json)


OPERATIONS = [
    (path, method.upper(), operation)
    for path, operations in openapi.document()["paths"].items()
    for method, operation in operations.items()
    if path.startswith(API)
]
# Pages and operator routes outside the API ignore what they do not take (a link
# to / may well carry ?utm_source=...).
OTHER_ROUTES = [path for path in openapi.document()["paths"] if not path.startswith(API)]


def valid_query(operation: dict) -> dict:
    """The operation's query parameters that are required or have an example."""
    return {
        p["name"]: p.get("example", "BTC")
        for p in operation["parameters"]
        if p["in"] == "query" and (p["required"] or "example" in p)
    }


@pytest.mark.parametrize(
    ("path", "method", "operation"), OPERATIONS, ids=[f"{m} {p}" for p, m, _ in OPERATIONS]
)
def test_an_unknown_query_parameter_is_400_naming_it(app, path, method, operation):
    url = path.replace("{symbol}", "BTC").replace("{coin_id}", "1")
    headers = bearer("relay:in", "relay:out", "relay:metrics")
    query = valid_query(operation)
    resp = app.request(
        f"{url}?{urlencode({**query, 'junk': '1'})}", method=method, headers=headers,
        expect_errors=True,
    )  # fmt: skip
    assert resp.status_int == 400, resp
    if method != "HEAD":
        assert resp.json["message"] == "Bad Request: unknown parameter 'junk'"
    if method in ("GET", "HEAD") and "relay-in" not in path:  # reads: without junk, no 400
        resp = app.request(f"{url}?{urlencode(query)}", method=method, headers=headers,
                           expect_errors=True)  # fmt: skip
        assert resp.status_int != 400, resp


@pytest.mark.parametrize("path", OTHER_ROUTES)
def test_routes_outside_the_api_ignore_unknown_parameters(app, path):
    assert {"/", "/health", "/openapi.json", "/docs", "/metrics"} <= set(OTHER_ROUTES)
    headers = bearer("relay:metrics")
    plain = app.get(path, headers=headers, expect_errors=True)
    junk = app.get(f"{path}?utm_source=x&junk=1", headers=headers, expect_errors=True)
    assert plain.status_int == junk.status_int
    assert junk.status_int in (200, 503), junk


def test_declared_names_pass_and_the_check_runs_after_the_token_check(app):
    headers = bearer("relay:out")
    records = f"{API}/relay-out/records"
    app.get(records, {"symbol": "BTC", "limit": "5"}, headers=headers, status=404)
    resp = app.get(records, {"symbol": "BTC", "Limit": "5"}, headers=headers, status=400)
    assert resp.json["message"] == "Bad Request: unknown parameter 'Limit'"
    # symbol is the name everywhere; the original Symbol stays an alias on both routes
    app.get(f"{API}/relay-out", {"symbol": "BTC"}, headers=headers, status=404)
    app.get(records, {"Symbol": "BTC"}, headers=headers, status=404)
    resp = app.get(records, {"Symbol": "BTC", "symbol": "ETH"}, headers=headers, status=400)
    assert resp.json["message"] == (
        "Bad Request: symbol and Symbol parameters are the same; give one"
    )
    app.get(records, {"symbol": "BTC", "junk": "1"}, status=401)
    assert app.get("/static/app.js?v=0ld").headers["Cache-Control"] == "no-cache"  # sinks: own


# -- one rule for dates in the future ------------------------------------------------------

TODAY = "2026-11-20"
NOON = datetime(2026, 11, 20, 12, tzinfo=UTC)


@pytest.fixture
def clocked(data, make_app, config):
    """The app on a clock that says it is noon UTC on TODAY."""
    return make_app(config, now=lambda: NOON)


def future_refused(resp, name: str) -> bool:
    if resp.status_int != 400 or "in the future" not in resp.json["message"]:
        return False
    assert resp.json["message"].startswith(f"Bad Request: {name} parameter is in the future")
    assert resp.json["data"] == {"parameter": name, "today": TODAY}
    return True


@pytest.mark.parametrize(("path", "name"), DATE_PARAMS, ids=[f"{p}:{n}" for p, n in DATE_PARAMS])
def test_a_date_after_today_is_400_naming_the_parameter_on_every_route(clocked, path, name):
    def ask(value):
        query = {**REQUIRED[path], name: value}
        return clocked.get(path, query, headers=bearer("relay:out"), expect_errors=True)

    exclusive_end = (path, name) in TIME_PARAMS and name == "end"
    # An end, which excludes its moment, may be the next midnight (to take all of today).
    assert future_refused(ask("2026-11-21"), name) is not exclusive_end
    assert future_refused(ask("2026-11-22"), name)
    assert future_refused(ask("2198-12-31"), name)
    assert not future_refused(ask(TODAY), name)
    if (path, name) in TIME_PARAMS:
        # A start is refused from the next midnight (UTC) on; an end past it.
        assert not future_refused(ask("2026-11-20T23:59:59Z"), name)
        assert future_refused(ask("2026-11-21T00:00:00Z"), name) is (name == "start")
        assert future_refused(ask("2026-11-21T00:00:01Z"), name)
        assert not future_refused(ask("2026-11-21T00:30:00+01:00"), name)


def test_the_document_states_the_rule_for_every_date_parameter():
    for path, name in DATE_PARAMS:
        (param,) = [
            p for p in openapi.document()["paths"][path]["get"]["parameters"] if p["name"] == name
        ]
        assert "not after today (UTC)" in param["description"], (path, name)
