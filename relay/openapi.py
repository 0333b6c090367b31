"""The OpenAPI 3.1 document of every route: what the tests hold the API to.

Built once from small helpers so each route states its parameters (types,
formats, enums, bounds), every status it can answer with the envelope
schema, and the scope its bearer token needs.
"""

from __future__ import annotations

from typing import Any

from relay.coins import SYMBOL as COIN_SYMBOL
from relay.markets import INTERVALS
from relay.resources.coins import MAX_COIN_ID, DashboardResource, SearchResource
from relay.resources.fx import ConvertResource, RatesResource, SeriesResource
from relay.resources.markets import (
    CandlesResource,
    PriceResource,
    ProfitResource,
    SymbolsResource,
)
from relay.resources.relay_in import RelayInResource, RunsResource
from relay.resources.relay_out import RecordsResource
from relay.sources import registry

API = "/relay-api/v1"
DECIMAL = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$", "description": "exact decimal"}
NULLABLE_DECIMAL = {"type": ["string", "null"], "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}
TIME = {"type": "string", "format": "date-time"}
QUOTE = {
    "type": ["string", "null"],
    "description": "the currency prices are in (BTCUSDT: USDT, BTC-USD: USD); null if unknown",
}
DATE = {"type": "string", "format": "date"}
DATE_REQUESTED = {
    "type": "string",
    "pattern": r"^(latest|[0-9]{4}-[0-9]{2}-[0-9]{2})$",
    "description": "the date asked for (latest when none was); date is the day used",
}
SOURCES = [source.name for source in registry.SOURCES]

ERROR_TEXT = {
    400: "Bad input; the message names the parameter",
    401: "Missing, malformed, expired or revoked token",
    403: "The token lacks the route's scope",
    404: "Unknown symbol, currency or route, or no data held for the dates asked",
    409: "A relay-in for the same source and symbol is already running",
    411: "A chunked body from a server that cannot say where it ends",
    413: "Body too large",
    414: "Query string too long",
    422: "Not enough history",
    500: "A bug; data.request_id names it in the logs",
    502: "The upstream failed; the message says how",
    503: "The database (or CoinMarketCap's rate limit) is unavailable",
    504: "The upstream did not answer in time",
}
COMMON_ERRORS = (401, 403, 413, 414, 500, 503)


def envelope(data: dict | None = None) -> dict:
    return {
        "type": "object",
        "required": ["code", "message", "data"],
        "additionalProperties": False,
        "properties": {
            "code": {"type": "integer"},
            "message": {"type": "string"},
            "data": data or {"type": "object"},
        },
    }


def obj(properties: dict, required: list[str] | None = None) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }


def param(
    name: str,
    schema: dict,
    *,
    required: bool = False,
    where: str = "query",
    description: str = "",
    example: Any = None,
) -> dict:
    out = {"name": name, "in": where, "required": required, "schema": schema}
    if description:
        out["description"] = description
    if example is not None:
        out["example"] = example
    return out


def json_response(description: str, data: dict) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{data}"}}},
    }


def declared(resource: type) -> list[dict]:
    """A resource's query parameters as it declares them (relay.params), documented."""
    return [entry for param in resource.query for entry in param.documented()]


def operation(
    summary: str,
    scope: str | None,
    parameters: list[dict],
    ok: dict[int | str, dict],
    errors: tuple[int, ...] = (),
    body: dict | None = None,
    *,
    takes_input: bool = True,
) -> dict:
    """An operation; 400 is documented where it takes input (every API route refuses a
    query parameter it does not declare), not on /health, /metrics and the like."""
    responses: dict[str, Any] = {str(k): v for k, v in ok.items()}
    for status in sorted(set(COMMON_ERRORS) | set(errors) | ({400} if takes_input else set())):
        if scope is None and status in (401, 403):
            continue
        responses[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    op: dict[str, Any] = {"summary": summary, "parameters": parameters, "responses": responses}
    op["security"] = [{"bearer": [scope]}] if scope else []
    if body is not None:
        op["requestBody"] = body
    return op


def html_page(summary: str) -> dict:
    """A public HTML page (its data, if any, is fetched with a token)."""
    return {
        "summary": summary,
        "parameters": [],
        "security": [],
        "responses": {
            "200": {
                "description": "HTML",
                "content": {"text/html": {"schema": {"type": "string"}}},
            }
        },
    }


RECORD = obj(
    {
        "symbol": {"type": "string"},
        "uuid": {"type": "string", "format": "uuid"},
        "time_exchange": TIME,
        "time_coinapi": TIME,
        "price": DECIMAL,
        "size": DECIMAL,
        "taker_side": {"type": "string"},
    }
)
RUN_RESULT = {
    "type": "object",
    "required": ["processed", "complete", "symbols"],
    "properties": {
        "processed": {"type": "integer", "minimum": 0},
        "complete": {"type": "boolean"},
        "symbols": {
            "type": "object",
            "additionalProperties": obj(
                {"processed": {"type": "integer"}, "complete": {"type": "boolean"}}
            ),
        },
        "snapshot": {"type": "string", "format": "uuid"},
        "logos": {"type": "object"},
    },
}
RATES_MAP = {"type": "object", "additionalProperties": DECIMAL}

SCHEMAS = {
    "Error": envelope(),
    "Health": envelope(
        obj(
            {
                "database": {"type": "string"},
                "sources": {
                    "type": "object",
                    "additionalProperties": obj(
                        {
                            "last_success": {"type": ["string", "null"], "format": "date-time"},
                            "overdue": {"type": "boolean"},
                        }
                    ),
                },
                # only with DATABASE_REPLICA_URL; lag_bytes while it answers, else reason
                "replica": obj(
                    {
                        "status": {"type": "string", "enum": ["ok", "unavailable"]},
                        "lag_bytes": {"type": "integer"},
                        "reason": {"type": "string"},
                    },
                    ["status"],
                ),
            },
            ["database", "sources"],
        )
    ),
    "RelayIn": envelope(RUN_RESULT),
    "Runs": envelope(
        obj(
            {
                "runs": {
                    "type": "array",
                    "items": obj(
                        {
                            "id": {"type": "integer"},
                            "source": {"type": "string", "enum": SOURCES},
                            "symbols": {"type": "array", "items": {"type": "string"}},
                            "fired_by": {"type": "string"},
                            "started_at": TIME,
                            "finished_at": {"type": ["string", "null"], "format": "date-time"},
                            "status": {
                                "type": "string",
                                "enum": ["running", "succeeded", "failed", "rejected", "abandoned"],
                            },
                            "http_status": {"type": ["integer", "null"]},
                            "processed": {"type": ["integer", "null"]},
                            "complete": {"type": ["boolean", "null"]},
                            "error": {"type": ["string", "null"]},
                        }
                    ),
                }
            }
        )
    ),
    "Records": envelope(
        obj(
            {
                "records": {"type": "array", "items": RECORD},
                "next_cursor": {"type": ["string", "null"]},
            }
        )
    ),
    "Symbols": envelope(obj({"symbols": {"type": "array", "items": {"type": "string"}}})),
    "Price": envelope(
        obj({"symbol": {"type": "string"}, "quote": QUOTE, "price": DECIMAL, "as_of": TIME})
    ),
    "Profit": envelope(
        obj(
            {
                "symbol": {"type": "string"},
                "quote": QUOTE,
                "value": DECIMAL,
                "price_then": DECIMAL,
                "price_now": DECIMAL,
                "then": TIME,
                "now": TIME,
                "final_value": DECIMAL,
                "profit": DECIMAL,
                "profit_percent": DECIMAL,
            }
        )
    ),
    "Candles": envelope(
        obj(
            {
                "symbol": {"type": "string"},
                "quote": QUOTE,
                "interval": {"type": "string", "enum": list(INTERVALS)},
                "candles": {
                    "type": "array",
                    "items": obj(
                        {
                            "time": TIME,
                            "open": DECIMAL,
                            "high": DECIMAL,
                            "low": DECIMAL,
                            "close": DECIMAL,
                            "volume": DECIMAL,
                        }
                    ),
                },
            }
        )
    ),
    "Dashboard": envelope(
        obj(
            {
                "date": DATE,
                "total": {"type": "integer"},
                "rows": {
                    "type": "array",
                    "items": obj(
                        {
                            "id": {"type": "integer"},
                            "name": {"type": "string"},
                            "symbol": {"type": "string"},
                            "logo": {"type": ["string", "null"]},
                            "price": DECIMAL,
                            "change_24h": NULLABLE_DECIMAL,
                            "change_7d": NULLABLE_DECIMAL,
                            "change_1m": NULLABLE_DECIMAL,
                            "changes_from": {
                                "type": "string",
                                "enum": ["cmc_snapshot", "daily_closes"],
                                "description": "CoinMarketCap's own changes from the day's "
                                "last snapshot, or the changes between daily closes",
                            },
                            "volume_24h": NULLABLE_DECIMAL,
                            "market_cap": NULLABLE_DECIMAL,
                        }
                    ),
                },
            }
        )
    ),
    "Search": envelope(
        obj(
            {
                "results": {
                    "type": "array",
                    "maxItems": 20,
                    "items": obj(
                        {
                            "id": {"type": "integer"},
                            "name": {"type": "string"},
                            "symbol": {"type": "string"},
                            "slug": {"type": "string"},
                            "logo": {"type": ["string", "null"]},
                        }
                    ),
                }
            }
        )
    ),
    "Rates": envelope(
        obj(
            {
                "base": {"type": "string"},
                "date_requested": DATE_REQUESTED,
                "date": DATE,
                "rates": RATES_MAP,
            }
        )
    ),
    "Series": envelope(
        obj(
            {
                "base": {"type": "string"},
                "start": DATE,
                "end": DATE,
                "rates": {"type": "object", "additionalProperties": RATES_MAP},
            }
        )
    ),
    "Convert": envelope(
        obj(
            {
                "from": {"type": "string"},
                "to": {"type": "string"},
                "amount": DECIMAL,
                "date_requested": DATE_REQUESTED,
                "date": DATE,
                "rate": DECIMAL,
                "result": DECIMAL,
            }
        )
    ),
}

NO_CONTENT = {"description": "Nothing new, or nothing matches (no body)"}
RELAY_IN_OK = {
    200: json_response("Time budget spent before anything new was stored", "RelayIn"),
    201: json_response("New rows stored", "RelayIn"),
    204: NO_CONTENT,
}
RELAY_IN_ERRORS = (404, 409, 502, 504)
CACHED = {
    "headers": {
        "ETag": {"schema": {"type": "string"}},
        # private: the answer needed a token, so no shared cache may keep it
        "Cache-Control": {"schema": {"type": "string", "pattern": "^private, "}},
        "Vary": {"schema": {"type": "string", "pattern": "Authorization"}},
    }
}
NOT_MODIFIED = {"description": "The client's copy (If-None-Match) is current"}
SYMBOLS_BODY = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "symbols": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 100,
                        "items": {"type": "string", "maxLength": 200},
                    }
                },
            }
        }
    },
}
LOGO_ANSWERS = {
    200: {
        "description": "The image",
        **CACHED,
        "content": {"image/*": {"schema": {"type": "string", "contentMediaType": "image/*"}}},
    },
    304: NOT_MODIFIED,
}


def _paths() -> dict:
    records = operation(
        "Trades of a CoinAPI symbol, newest first, keyset-paginated",
        "relay:out",
        declared(RecordsResource),
        {200: json_response("A page of trades", "Records")},
        (404,),
    )

    paths = {
        "/health": {
            "get": operation(
                "Database reachability and each source's last successful relay-in",
                None,
                [],
                {200: json_response("The database answers", "Health")},
                takes_input=False,
            )
        },
        "/metrics": {
            "get": operation(
                "Prometheus metrics: requests, latency, relay-in runs and rows, the pool",
                "relay:metrics",
                [],
                {
                    200: {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                takes_input=False,
            )
        },
        "/": {"get": html_page("The web page: dashboard, search, prices, candles, FX")},
        "/docs": {"get": html_page("An interactive view of this document (Swagger UI)")},
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "parameters": [],
                "security": [],
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        f"{API}/relay-in": {
            "get": operation(
                "Relay one symbol in (the original contract); source defaults to coinapi",
                "relay:in",
                declared(RelayInResource),
                RELAY_IN_OK,
                RELAY_IN_ERRORS,
            )
        },
        f"{API}/relay-in/runs": {
            "get": operation(
                "Recent relay-in runs, newest first",
                "relay:in",
                declared(RunsResource),
                {200: json_response("Runs", "Runs")},
            )
        },
        f"{API}/relay-out": {"get": records},
        f"{API}/relay-out/records": {"get": records},
        f"{API}/relay-out/symbols": {
            "get": operation(
                "An exchange's symbols held, in order (those price, profit and candles answer for)",
                "relay:out",
                declared(SymbolsResource),
                {200: json_response("Symbols", "Symbols")},
            )
        },
        f"{API}/relay-out/price": {
            "get": operation(
                "The last traded price held for a symbol of an exchange",
                "relay:out",
                declared(PriceResource),
                {200: json_response("Price", "Price")},
                (404,),
            )
        },
        f"{API}/relay-out/profit": {
            "get": operation(
                "What value bought 24 hours ago is worth now",
                "relay:out",
                declared(ProfitResource),
                {200: json_response("Profit", "Profit")},
                (404, 422),
            )
        },
        f"{API}/relay-out/candles": {
            "get": operation(
                "OHLCV candles resampled from 1-minute rows",
                "relay:out",
                declared(CandlesResource),
                {200: json_response("Candles", "Candles")},
                (404,),
            )
        },
        f"{API}/relay-out/dashboard": {
            "get": operation(
                "The ranked coin table for a day",
                "relay:out",
                declared(DashboardResource),
                {200: json_response("Rows", "Dashboard"), 204: NO_CONTENT},
            )
        },
        f"{API}/relay-out/search": {
            "get": operation(
                "Coins by name or symbol",
                "relay:out",
                declared(SearchResource),
                {200: json_response("Results", "Search"), 204: NO_CONTENT},
            )
        },
        f"{API}/relay-out/coins/{{coin_id}}/logo": {
            "get": operation(
                "A coin's logo image, by the id dashboard and search rows give",
                "relay:out",
                [
                    param(
                        "coin_id",
                        {"type": "integer", "minimum": 1, "maximum": MAX_COIN_ID},
                        required=True,
                        where="path",
                    )
                ],
                LOGO_ANSWERS,
                (404,),
            )
        },
        f"{API}/relay-out/assets/{{symbol}}/logo": {
            "get": operation(
                "The logo of the best-ranked coin with a symbol",
                "relay:out",
                [
                    param(
                        "symbol",
                        {"type": "string", "pattern": COIN_SYMBOL.pattern},
                        required=True,
                        where="path",
                    )
                ],
                LOGO_ANSWERS,
                (404,),
            )
        },
        f"{API}/relay-out/rates": {
            "get": operation(
                "Euro reference rates on a day, cross rates through the euro",
                "relay:out",
                declared(RatesResource),
                {200: {**json_response("Rates", "Rates"), **CACHED}, 304: NOT_MODIFIED},
                (404,),
            )
        },
        f"{API}/relay-out/rates/series": {
            "get": operation(
                "Rates over a range of business days (at most 366 days)",
                "relay:out",
                declared(SeriesResource),
                {200: {**json_response("Series", "Series"), **CACHED}, 304: NOT_MODIFIED},
                (404,),
            )
        },
        f"{API}/relay-out/convert": {
            "get": operation(
                "Convert an amount between currencies",
                "relay:out",
                declared(ConvertResource),
                {200: {**json_response("Conversion", "Convert"), **CACHED}, 304: NOT_MODIFIED},
                (404,),
            )
        },
    }
    for source in registry.SOURCES:
        paths[f"{API}/relay-in/{source.name}"] = {
            "post": operation(
                f"Relay {source.name} in"
                + (" (optional body: the symbols)" if source.takes_symbols else " (no body)"),
                "relay:in",
                [],
                RELAY_IN_OK,
                (*RELAY_IN_ERRORS, 411),
                body=SYMBOLS_BODY if source.takes_symbols else None,
            )
        }
    for path, operations in paths.items():
        # a copy per path: /relay-out and /relay-out/records share one operation object
        for method, op in operations.items():
            operations[method] = {**op, "tags": [tag(path)]}
        if "get" in operations and path not in UNSAFE_GETS:
            operations["head"] = head(operations["get"])
    return paths


# Swagger UI groups operations by these tags, in this order; each operation has exactly one.
TAGS = {
    "relay-in": "Pull fresh data from the upstreams into the database (a relay:in token)",
    "relay-out": "Read trades, prices, profit and candles back (a relay:out token)",
    "FX": "Euro reference rates, series and conversion (a relay:out token)",
    "coins": "The ranked coin table, search and logos (a relay:out token)",
    "operations": "Health, metrics, this document and the pages for people",
}
# Each path's tag: the first entry its path starts with; a path none matches fails the build.
TAG_OF_PATH = (
    (f"{API}/relay-in", "relay-in"),
    (f"{API}/relay-out/rates", "FX"),
    (f"{API}/relay-out/convert", "FX"),
    (f"{API}/relay-out/dashboard", "coins"),
    (f"{API}/relay-out/search", "coins"),
    (f"{API}/relay-out/assets/", "coins"),
    (f"{API}/relay-out", "relay-out"),
)
OPERATIONS_PATHS = frozenset({"/", "/docs", "/openapi.json", "/health", "/metrics"})


def tag(path: str) -> str:
    """The one tag of ``path``'s operations; a new path must be given one here."""
    if path in OPERATIONS_PATHS:
        return "operations"
    for prefix, name in TAG_OF_PATH:
        if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
            return name
    raise KeyError(f"no OpenAPI tag for {path}: add it to relay.openapi.TAG_OF_PATH")


# GET routes that change data (the original relay-in contract): HEAD must not run them.
UNSAFE_GETS = frozenset({f"{API}/relay-in"})


def head(get: dict) -> dict:
    """HEAD of a GET route: the same parameters, statuses and headers, never a body."""
    responses = {
        status: (
            {"description": ERROR_TEXT[int(status)]}
            if "$ref" in answer
            else {k: v for k, v in answer.items() if k != "content"}
        )
        for status, answer in get["responses"].items()
    }
    return {**get, "summary": f"{get['summary']} (headers only)", "responses": responses}


def document(server_url: str | None = None) -> dict:
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "relay",
            "version": "1.0.0",
            "description": "Authenticated market-data relay API. Every body is the envelope "
            '{"code", "message", "data"}; decimals are exact strings; times are UTC.',
        },
        "tags": [{"name": name, "description": text} for name, text in TAGS.items()],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "HS256 JWT whose scope claim lists relay:in, relay:out "
                    "and/or relay:metrics (space-separated)",
                }
            },
            "schemas": SCHEMAS,
            "responses": {
                f"E{status}": {
                    "description": text,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
                for status, text in ERROR_TEXT.items()
            },
        },
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc
