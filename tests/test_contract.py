"""The API against its OpenAPI document: every route listed, and property-based calls.

Schemathesis generates requests from /openapi.json and checks every answer
against it (no 5xx, documented statuses, content types and schemas), with
real PostgreSQL and loopback upstreams behind the app. The example budget
is small by default to keep CI fast; for a long run:

    RELAY_SCHEMATHESIS_EXAMPLES=500 ./run test tests/test_contract.py
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import falcon.inspect
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from relay import openapi
from tests.conftest import bearer
from tests.upstreams import (
    SAMPLES,
    FakeBinance,
    FakeCMC,
    FakeCoinAPI,
    FakeCoinbase,
    FakeECB,
    cmc_listing,
    ecb_days,
    ecb_hist_zip,
)

EXAMPLES = int(os.environ.get("RELAY_SCHEMATHESIS_EXAMPLES", "8"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_the_document_lists_exactly_the_routes_the_app_serves(app):
    served = {
        (route.path, method.method)
        for route in falcon.inspect.inspect_routes(app.app)
        for method in route.methods
        if not method.internal and method.method != "OPTIONS"
    }
    documented = {
        (path, method.upper())
        for path, operations in openapi.document()["paths"].items()
        for method in operations
    }
    assert served == documented


def test_the_document_is_served_without_a_token(app):
    doc = app.get("/openapi.json").json
    assert doc["openapi"] == "3.1.0"
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert doc["paths"][f"{openapi.API}/relay-out/price"]["get"]["security"] == [
        {"bearer": ["relay:out"]}
    ]


@pytest.fixture
def contract_app(make_app, config, httpserver):
    """The app behind loopback upstreams that answer any symbol, with some data in."""
    FakeCoinAPI(httpserver, synthetic_per_s=1)
    FakeBinance(httpserver, synthetic=True)
    # relay paces itself by the clock it is given; here sleeps are recorded, not slept,
    # so the loopback's real-time rate limit is lifted (tests/test_coinbase.py tests it)
    FakeCoinbase(httpserver, synthetic=True, burst=10**6)
    ecb = FakeECB(httpserver)
    ecb.files["eurofxref-daily.xml"] = (SAMPLES / "ecb_daily.xml").read_bytes()
    ecb.files["eurofxref-hist-90d.xml"] = (SAMPLES / "ecb_hist90d.xml").read_bytes()
    ecb.files["eurofxref-hist.zip"] = ecb_hist_zip(
        ecb_days((SAMPLES / "ecb_hist90d.xml").read_text()), ["USD", "JPY", "GBP"]
    )
    cmc = FakeCMC()
    cmc.listings = [
        cmc_listing(1, "Bitcoin", "BTC", 1, "9000"),
        cmc_listing(2, "Ether", "ETH", 2, "300"),
    ]
    base = httpserver.url_for("/").rstrip("/")
    app = make_app(
        config.replace(
            coinapi_url=base,
            binance_url=base,
            coinbase_url=base,
            ecb_url=base,
            cmc_url=cmc.url,
            cmc_api_key=cmc.key,
            coinapi_backfill_hours=1,
            binance_backfill_hours=1,
            coinbase_backfill_hours=1,
        ),
        now=lambda: datetime.now(UTC),
    )
    # Some data, so reads answer with bodies as well as 404/204.
    inside = bearer("relay:in")
    app.post("/relay-api/v1/relay-in/ecb", headers=inside)
    app.post("/relay-api/v1/relay-in/cmc", headers=inside)
    app.post_json("/relay-api/v1/relay-in/binance", {"symbols": ["ADAUSDT"]}, headers=inside)
    app.post_json("/relay-api/v1/relay-in/coinbase", {"symbols": ["BTC-USD"]}, headers=inside)
    yield app.app
    cmc.stop()


schema = schemathesis.openapi.from_dict(openapi.document())


@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    derandomize=True,
)
def test_every_answer_keeps_to_the_document(case, contract_app):
    for scope in ("relay:in", "relay:out"):
        case.call_and_validate(app=contract_app, headers=bearer(scope), checks=CHECKS)
