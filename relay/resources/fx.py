"""Relay-out routes for ECB reference rates: rates, series, conversion (cacheable)."""

from __future__ import annotations

import re
from decimal import Decimal

from relay import caching, params
from relay.errors import BadRequest, envelope
from relay.fx import FX

_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
MAX_SYMBOLS = 50
_CODES = re.compile(rf"^[A-Za-z]{{3}}( *, *[A-Za-z]{{3}}){{0,{MAX_SYMBOLS - 1}}}$")
# a non-negative decimal up to 1e18, digits as written
_AMOUNT = re.compile(r"^([0-9]{1,18}(\.[0-9]{1,30})?|1000000000000000000(\.0{1,30})?)$")


def currency(name: str, *, default: str | None = None, example: str | None = None):
    def read(raw: str, used: str) -> str:
        if not _CURRENCY.match(raw):
            raise BadRequest(f"Bad Request: {used} parameter must be a 3-letter currency code")
        return raw.upper()

    schema = {"type": "string", "pattern": _CURRENCY.pattern}
    if default:
        schema["default"] = default
    return params.Param(
        name, schema, read, required=default is None, default=default, example=example
    )


def _codes(raw: str, used: str) -> list[str]:
    if not _CODES.match(raw):
        raise BadRequest(
            f"Bad Request: {used} parameter must be a comma-separated list of currency codes"
        )
    return list(dict.fromkeys(c.strip().upper() for c in raw.split(",")))


def _amount(raw: str, used: str) -> Decimal:
    if not _AMOUNT.match(raw):
        raise BadRequest(f"Bad Request: {used} parameter must be a non-negative number up to 1e18")
    return Decimal(raw)


SYMBOLS = params.Param(
    "symbols",
    {"type": "string", "pattern": _CODES.pattern},
    _codes,
    description="comma-separated currency codes",
    example="JPY,GBP",
)
BASE = currency("base", default="EUR", example="USD")


class _FXResource:
    auth_scope = "relay:out"

    def __init__(self, fx: FX):
        self._fx = fx

    @staticmethod
    def _send(req, resp, result):
        data, cache_control = result
        caching.send_json(req, resp, envelope(200, "OK", data), cache_control=cache_control)


class RatesResource(_FXResource):
    """GET /relay-out/rates?date=latest&base=EUR&symbols=USD,JPY"""

    query = (
        params.date_param("date", latest=True, description="latest or YYYY-MM-DD"),
        BASE,
        SYMBOLS,
    )

    def on_get(self, req, resp):
        query = req.context.query
        self._send(req, resp, self._fx.rates(query["date"], query["base"], query["symbols"]))


class SeriesResource(_FXResource):
    """GET /relay-out/rates/series?start=2020-01-01&end=2020-03-31&base=USD&symbols=JPY"""

    query = (
        params.date_param("start", required=True, example="2018-06-01"),
        params.date_param("end", example="2018-06-11"),
        BASE,
        SYMBOLS,
    )

    def on_get(self, req, resp):
        q = req.context.query
        self._send(req, resp, self._fx.series(q["start"], q["end"], q["base"], q["symbols"]))


class ConvertResource(_FXResource):
    """GET /relay-out/convert?from=USD&to=JPY&amount=100&date=2020-03-02"""

    query = (
        currency("from", example="USD"),
        currency("to", example="JPY"),
        params.Param(
            "amount",
            {"type": "string", "pattern": _AMOUNT.pattern, "default": "1"},
            _amount,
            default=Decimal(1),
            description="non-negative decimal up to 1e18, default 1",
            example="100",
        ),
        params.date_param("date", latest=True, description="latest or YYYY-MM-DD"),
    )

    def on_get(self, req, resp):
        q = req.context.query
        self._send(req, resp, self._fx.convert(q["from"], q["to"], q["amount"], q["date"]))
