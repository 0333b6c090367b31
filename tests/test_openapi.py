"""The OpenAPI document as Swagger UI reads it: every operation grouped under one tag."""

from __future__ import annotations

from relay import openapi

TAGS = {"relay-in", "relay-out", "FX", "coins", "operations"}
METHODS = {"get", "head", "post", "put", "patch", "delete", "options"}


def test_every_operation_has_exactly_one_declared_tag(app):
    doc = app.get("/openapi.json").json
    declared = [entry["name"] for entry in doc["tags"]]
    assert declared == ["relay-in", "relay-out", "FX", "coins", "operations"]
    assert all(entry["description"] for entry in doc["tags"])
    seen = set()
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            assert method in METHODS, (path, method)
            assert len(operation["tags"]) == 1, (path, method, operation["tags"])
            assert operation["tags"][0] in TAGS, (path, method)
            seen.add(operation["tags"][0])
    assert seen == TAGS  # no declared tag is empty


def test_operations_are_grouped_as_a_reader_looks_for_them():
    paths = openapi.document()["paths"]

    def tag(path, method="get"):
        return paths[path][method]["tags"][0]

    api = openapi.API
    assert tag(f"{api}/relay-in") == "relay-in"
    assert tag(f"{api}/relay-in/ecb", "post") == "relay-in"
    assert tag(f"{api}/relay-in/runs") == "relay-in"
    assert tag(f"{api}/relay-out/records") == tag(f"{api}/relay-out") == "relay-out"
    assert tag(f"{api}/relay-out/price") == tag(f"{api}/relay-out/candles") == "relay-out"
    assert tag(f"{api}/relay-out/rates") == tag(f"{api}/relay-out/rates/series") == "FX"
    assert tag(f"{api}/relay-out/convert") == "FX"
    assert tag(f"{api}/relay-out/dashboard") == tag(f"{api}/relay-out/search") == "coins"
    assert tag(f"{api}/relay-out/assets/{{symbol}}/logo") == "coins"
    for path in ("/health", "/metrics", "/docs", "/openapi.json", "/"):
        assert tag(path) == "operations"
