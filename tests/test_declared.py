"""Each route's parameters are declared once; the document and the server read that one.

Two checks: every route's documented parameters are exactly what its resource declares
(so the document cannot list a parameter the server refuses as unknown, or miss one it
takes); and for every declared parameter, values its documented schema allows are taken
by the server's parse, and values it does not allow are refused with a 400 naming it.
"""

from __future__ import annotations

import re
from datetime import date

import falcon.inspect
import falcon.testing
import hypothesis
import pytest
from hypothesis import strategies as st

from relay import db, openapi, params
from relay.app import create_app
from relay.config import Config
from relay.errors import BadRequest
from tests.conftest import SECRET

DOC = openapi.document()
# The app's routes and resources, built without a database (create_app opens nothing).
APP = create_app(
    Config(database_url="postgresql://relay@127.0.0.1:9/relay", jwt_secrets=(SECRET,)),
    db.make_pool("postgresql://relay@127.0.0.1:9/relay", min_size=0),
)


def routes():
    for route in falcon.inspect.inspect_routes(APP):
        for method in route.methods:
            if method.internal or method.method in ("OPTIONS",):
                continue
            yield route, method.method


def resource_of(path: str):
    return APP._router.find(path.replace("{symbol}", "BTC"))[0]


def test_every_route_documents_exactly_the_parameters_its_resource_declares():
    checked = 0
    for route, method in routes():
        resource = resource_of(route.path)
        documented = {
            p["name"]
            for p in DOC["paths"][route.path][method.lower()].get("parameters", [])
            if p["in"] == "query"
        }
        declared = getattr(resource, "query", None)
        if declared is None:  # the page, the docs, health: outside the API, no query
            assert documented == set(), route.path
            assert not route.path.startswith(openapi.API), route.path
            continue
        assert documented == {n for p in declared for n in p.names}, (route.path, method)
        checked += 1
    assert checked >= 20


def test_400_is_documented_exactly_where_a_route_takes_input():
    for route, method in routes():
        operation = DOC["paths"][route.path][method.lower()]
        assert ("400" in operation["responses"]) is route.path.startswith(openapi.API), route.path


# An opaque cursor is valid only as the server made it: its schema cannot say which.
OPAQUE = {"cursor"}
EVERY_PARAM = {
    f"{route.path}?{param.name}": param
    for route, _ in routes()
    for param in getattr(resource_of(route.path), "query", ())
    if param.name not in OPAQUE
}


def accepts(param: params.Param, raw: str) -> bool:
    """Whether the server takes ``raw`` for ``param`` (as the first of the request's checks)."""
    try:
        param.take(raw, param.name)
    except BadRequest as exc:
        assert param.name in exc.message or param.missing, (param.name, exc.message)
        return False
    return True


def values_allowed(schema: dict) -> st.SearchStrategy[str]:
    if schema["type"] == "integer":
        return st.integers(schema["minimum"], schema["maximum"]).map(str)
    allowed = st.from_regex(schema["pattern"], fullmatch=True)
    return allowed.filter(lambda s: len(s) <= schema.get("maxLength", 10**6))


def allowed_by(schema: dict, raw: str) -> bool:
    if schema["type"] == "integer":
        return bool(re.fullmatch(r"-?[0-9]+", raw)) and (
            schema["minimum"] <= int(raw) <= schema["maximum"]
        )
    return bool(re.search(schema["pattern"], raw)) and len(raw) <= schema.get("maxLength", 1e9)


# What a server may be sent: printable text (control characters are refused before any
# parameter is read) with no surrounding spaces (they are stripped from every value).
SENT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40).filter(
    lambda s: s == s.strip(" ") and s.strip()
)
NEAR = st.sampled_from(
    ["0", "-1", "1e3", "1.", ".5", "BTC-", "ALL,", "2024-02-30", "2023-02-29", "1970-01-01",
     "2199-01-01", "2020-01-01T24:00", "latest", "Binance", "COINBASE", "1H", "1M", "DESC",
     "market_CAP", "usd", "US", "USD,JPY", "USD,,JPY", "100.5", "1000000000000000.1",
     "1000000000000000", "0.000000000000000001", "0.0000000000000000001", "abc", "t" * 201,
     "market_\u212aap", "\u00dftc", "\u0131", "1\u210e", "d\u0131sc"]
)  # fmt: skip


def test_the_declarations_cover_the_api():
    assert len(EVERY_PARAM) >= 25
    assert "/relay-api/v1/relay-out/candles?interval" in EVERY_PARAM


@pytest.mark.parametrize("key", sorted(EVERY_PARAM))
@hypothesis.settings(max_examples=40, deadline=None, derandomize=True)
@hypothesis.given(data=st.data())
def test_what_a_schema_allows_the_server_takes_and_what_it_refuses_the_server_refuses(key, data):
    param = EVERY_PARAM[key]
    good = data.draw(values_allowed(param.schema))
    assert accepts(param, good), (key, good)
    raw = data.draw(st.one_of(SENT, NEAR))
    assert accepts(param, raw) == allowed_by(param.schema, raw), (key, raw)


def test_every_parameter_taking_a_date_refuses_one_after_today_naming_it():
    """One rule for dates in the future, declared once: whatever takes a date has it."""
    today = date(2026, 11, 20)
    dated = {
        key: param
        for key, param in EVERY_PARAM.items()
        if param.schema["type"] == "string"
        and re.search(param.schema["pattern"], "2198-12-31")
        and not re.search(param.schema["pattern"], "2198-12-32")  # a date, not any text
    }
    assert len(dated) >= 9  # records (two routes) and candles: start, end; rates, convert,
    # series: date, start, end; the dashboard: date
    for key, param in dated.items():
        req = falcon.testing.create_req(query_string=f"{param.name}=2026-11-22")
        with pytest.raises(BadRequest) as refused:
            param.parse(req, today)
        assert refused.value.message.startswith(
            f"Bad Request: {param.name} parameter is in the future"
        ), key
        req = falcon.testing.create_req(query_string=f"{param.name}=2026-11-20")
        param.parse(req, today)  # today itself is taken
