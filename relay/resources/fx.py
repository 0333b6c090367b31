"""Relay-out routes for ECB reference rates: rates, series, conversion (cacheable)."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation

from relay import caching, params
from relay.errors import BadRequest, envelope
from relay.fx import FX

_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
MAX_SYMBOLS = 50
MAX_AMOUNT = Decimal("1e18")


def currency(req, name: str, default: str | None = None) -> str:
    raw = params.text(req, name, required=default is None) or default
    if not _CURRENCY.match(raw):
        raise BadRequest(f"Bad Request: {name} parameter must be a 3-letter currency code")
    return raw.upper()


def currencies(req, name: str = "symbols") -> list[str] | None:
    raw = params.text(req, name)
    if raw is None:
        return None
    codes = [part.strip() for part in raw.split(",") if part.strip()]
    if not codes or len(codes) > MAX_SYMBOLS or not all(_CURRENCY.match(c) for c in codes):
        raise BadRequest(
            f"Bad Request: {name} parameter must be a comma-separated list of currency codes"
        )
    return list(dict.fromkeys(c.upper() for c in codes))


def day(req, name: str, *, latest_allowed: bool = False, required: bool = False) -> date | None:
    raw = params.text(req, name, required=required)
    if raw is None or (latest_allowed and raw == "latest"):
        return None
    try:
        return date.fromisoformat(raw) if len(raw) == 10 else _bad_date(name)
    except ValueError:
        return _bad_date(name)


def _bad_date(name: str):
    raise BadRequest(f"Bad Request: {name} parameter must be a date (YYYY-MM-DD)")


def amount(req) -> Decimal:
    raw = params.text(req, "amount") or "1"
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value < 0 or value > MAX_AMOUNT:
        raise BadRequest("Bad Request: amount parameter must be a non-negative number up to 1e18")
    return value


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

    def on_get(self, req, resp):
        on = day(req, "date", latest_allowed=True)
        result = self._fx.rates(on, currency(req, "base", "EUR"), currencies(req))
        self._send(req, resp, result)


class SeriesResource(_FXResource):
    """GET /relay-out/rates/series?start=2020-01-01&end=2020-03-31&base=USD&symbols=JPY"""

    def on_get(self, req, resp):
        start = day(req, "start", required=True)
        end = day(req, "end")
        result = self._fx.series(start, end, currency(req, "base", "EUR"), currencies(req))
        self._send(req, resp, result)


class ConvertResource(_FXResource):
    """GET /relay-out/convert?from=USD&to=JPY&amount=100&date=2020-03-02"""

    def on_get(self, req, resp):
        source, target = currency(req, "from"), currency(req, "to")
        value = amount(req)
        on = day(req, "date", latest_allowed=True)
        self._send(req, resp, self._fx.convert(source, target, value, on))
