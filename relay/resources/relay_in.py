"""Relay-in routes: the scheduler asks us to pull fresh data from an upstream."""

from __future__ import annotations

from typing import Protocol

import falcon

from relay import params
from relay.errors import BadRequest, envelope
from relay.ingest import RunResult
from relay.runs import Ledger
from relay.sources.registry import SOURCES

MAX_SYMBOLS = 100


class Runner(Protocol):
    """What every source's relay-in offers to the routes."""

    name: str
    concern: str  # what its data changes, for the answer cache
    takes_symbols: bool  # False for a source that relays everything it has (the ECB)

    def default_symbols(self) -> list[str]: ...

    def resolve(self, symbol: str | None) -> str: ...

    def expand(self, requested: list[str]) -> list[str]: ...

    def run(self, symbols: list[str]) -> RunResult: ...


def fired_by(req) -> str:
    return req.context.principal.sub


def answer(resp: falcon.Response, result: RunResult) -> None:
    """201 with counts when rows were stored, 204 when caught up with nothing new."""
    status = result.http_status
    resp.status = status
    if status != 204:
        resp.media = envelope(status, "Created" if status == 201 else "OK", result.as_data())


SOURCE_NAMES = [source.name for source in SOURCES]


class RelayInResource:
    """GET /relay-api/v1/relay-in?symbol=BTC[&source=coinapi]: the original contract."""

    auth_scope = "relay:in"
    safe_get = False  # this GET relays data in: HEAD must not (405)
    query = (
        params.text_param(
            "symbol",
            aliases=("Symbol",),
            description="required for sources that take symbols (each source's own rule)",
            example="BTC",
        ),
        params.choice_param("source", SOURCE_NAMES, default="coinapi"),
    )

    def __init__(self, ledger: Ledger, runners: dict[str, Runner]):
        self._ledger = ledger
        self._runners = runners

    def on_get(self, req, resp):
        runner = self._runners[req.context.query["source"]]
        symbol = req.context.query["symbol"]
        symbols = [runner.resolve(symbol)] if runner.takes_symbols else []
        answer(resp, self._ledger.run(runner, symbols, fired_by(req)))


class SourceRelayInResource:
    """POST /relay-api/v1/relay-in/{source} with optional JSON ``{"symbols": [...]}``."""

    auth_scope = "relay:in"
    query = ()

    def __init__(self, ledger: Ledger, runner: Runner):
        self._ledger = ledger
        self._runner = runner

    def on_post(self, req, resp):
        # An empty body is no body, whatever it claims to be (`curl -d ''` says
        # it is a form; some servers call a body-less request text/plain).
        empty = req.content_length == 0 or (
            req.content_length is None and req.get_header("Transfer-Encoding") is None
        )
        body = None if empty else req.get_media(default_when_empty=None)
        if not self._runner.takes_symbols:
            if body not in (None, {}):
                raise BadRequest(f"Bad Request: {self._runner.name} relay-in takes no body")
            answer(resp, self._ledger.run(self._runner, [], fired_by(req)))
            return
        symbols = parse_symbols(body) or self._runner.default_symbols()
        if not symbols:
            raise BadRequest("Bad Request: symbols must be given in the body")
        resolved = self._runner.expand(symbols)
        if not resolved:
            raise BadRequest("Bad Request: no symbol matches", data={"symbols": symbols[:10]})
        answer(resp, self._ledger.run(self._runner, resolved, fired_by(req)))


def parse_symbols(body) -> list[str] | None:
    """Validate the optional body ``{"symbols": [str, ...]}``."""
    if body is None:
        return None
    if not isinstance(body, dict):
        raise BadRequest("Bad Request: body must be a JSON object")
    unknown = set(body) - {"symbols"}
    if unknown:
        raise BadRequest(f"Bad Request: unknown field {sorted(unknown)[0]!r} in body")
    symbols = body.get("symbols")
    if symbols is None:
        return None
    if not isinstance(symbols, list) or not symbols or not all(isinstance(s, str) for s in symbols):
        raise BadRequest("Bad Request: symbols must be a non-empty list of strings")
    if len(symbols) > MAX_SYMBOLS:
        raise BadRequest(f"Bad Request: at most {MAX_SYMBOLS} symbols at once")
    return symbols


class RunsResource:
    """GET /relay-api/v1/relay-in/runs?source=&limit=: recent runs, newest first."""

    auth_scope = "relay:in"
    query = (
        params.choice_param("source", SOURCE_NAMES, default=None),
        params.whole_param("limit", default=20, low=1, high=200),
    )

    def __init__(self, ledger: Ledger):
        self._ledger = ledger

    def on_get(self, req, resp):
        query = req.context.query
        resp.media = envelope(
            200, "OK", {"runs": self._ledger.recent(query["source"], query["limit"])}
        )
