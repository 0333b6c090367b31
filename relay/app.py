"""Assemble the WSGI app.

``create_app`` only wires routes, middleware and handlers from what it is
given (tests pass their own pool and settings). ``get_app`` reads the
environment and builds the real dependencies. gunicorn serves
``relay.app:app``, built on first access in each worker, after the fork.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import falcon
from psycopg_pool import ConnectionPool

from relay import db, errors, media, params
from relay.auth import AuthMiddleware, Revocations, TokenVerifier
from relay.changes import AnswerCache, Changes
from relay.coins import Coins
from relay.config import Config
from relay.fx import FX
from relay.ingest import utcnow
from relay.markets import Markets
from relay.middleware import (
    LimitsMiddleware,
    PrivateAnswersMiddleware,
    RequestIdMiddleware,
)
from relay.observe import Metrics, MetricsResource, ObserveMiddleware, configure_logging
from relay.reads import Reads, make_replica_pool
from relay.resources import docs, web
from relay.resources.coins import (
    CoinLogoResource,
    DashboardResource,
    LogoResource,
    SearchResource,
)
from relay.resources.docs import DocsResource
from relay.resources.fx import ConvertResource, RatesResource, SeriesResource
from relay.resources.health import HealthResource, OpenAPIResource
from relay.resources.markets import (
    CandlesResource,
    PriceResource,
    ProfitResource,
    SymbolsResource,
)
from relay.resources.relay_in import RelayInResource, RunsResource, SourceRelayInResource
from relay.resources.relay_out import RecordsResource
from relay.runs import Ledger
from relay.sources.http import UpstreamClient, new_session
from relay.sources.registry import MARKETS, SOURCES
from relay.sources.source import Wiring
from relay.trades import Trades

log = logging.getLogger(__name__)

API = "/relay-api/v1"


class App(falcon.App):
    """A Falcon app whose every GET route answers HEAD too (uptime monitors use HEAD).

    HEAD runs the GET responder; Falcon sends its status and headers (with the
    body's length) and no body. Done as routes are added, so none can forget it.
    """

    answer_cache: AnswerCache | None = None  # this worker's, for operators and tests
    reads: Reads | None = None  # where relay-out reads go (the replica or the primary)

    def add_route(self, uri_template: str, resource: object, **kwargs) -> None:
        suffix = kwargs.get("suffix")
        get, head = (
            ("on_get", "on_head") if not suffix else (f"on_get_{suffix}", f"on_head_{suffix}")
        )
        safe = getattr(resource, "safe_get", True)  # a GET that changes data gets no HEAD
        if safe and hasattr(resource, get) and not hasattr(resource, head):
            setattr(resource, head, getattr(resource, get))
        super().add_route(uri_template, resource, **kwargs)


def create_app(
    config: Config,
    pool: ConnectionPool,
    *,
    now: Callable[[], datetime] = utcnow,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    uuidgen: Callable[[], uuid.UUID] = uuid.uuid4,
    changes: Changes | None = None,
    metrics: Metrics | None = None,
    replica: ConnectionPool | None = None,
) -> falcon.App:
    """Wire the app from its dependencies; opens nothing, reads no environment.

    With ``changes`` (a started listener) answers are cached until the data
    they come from changes; without it every answer is read afresh. With
    ``replica`` (a pool on a read replica, reads.make_replica_pool) relay-out
    reads go to it whenever it has replayed what ``changes`` has heard of.
    """
    cache = AnswerCache(
        changes if config.answer_cache else None, max_bytes=config.answer_cache_mb << 20
    )
    metrics = metrics or Metrics(multiprocess_dir=config.metrics_dir)
    session = new_session()  # one connection pool for every upstream

    def client(name: str) -> UpstreamClient:
        return UpstreamClient(
            name, timeout_s=config.upstream_timeout_s, session=session, sleep=sleep, clock=clock
        )

    # Every relay-in shares the pool, the time budget and the clocks.
    wiring = Wiring(
        pool=pool,
        client=client,
        budget_s=config.relay_in_budget_s,
        now=now,
        clock=clock,
        sleep=sleep,
        uuidgen=uuidgen,
        concurrency=config.relay_in_concurrency,
        retain_candles_1m=config.retain_candles_1m,
        retain_trades=config.retain_trades,
    )
    runners = {s.name: s.relay_in.build(config.source(s.name), wiring) for s in SOURCES}
    reads = Reads(pool, replica, changes)
    coins = Coins(reads, cache)
    fx = FX(reads, now, cache)

    middleware: list = [
        RequestIdMiddleware(),
        ObserveMiddleware(metrics, pool),
        PrivateAnswersMiddleware(),
    ]
    if config.cors_origins:
        # The frontend runs on another origin; preflights pass before auth.
        middleware.append(
            falcon.CORSMiddleware(
                allow_origins=list(config.cors_origins), expose_headers=["X-Request-Id", "ETag"]
            )
        )
    middleware += [
        LimitsMiddleware(config.max_query_bytes, config.max_body_bytes),
        AuthMiddleware(TokenVerifier(config.jwt_secrets), Revocations(pool, changes)),
        # after the token check: a caller without one learns nothing more. Each API route
        # parses its query by its declaration; the page and docs ignore the rest.
        params.DeclaredParameters(now),
    ]
    app = App(middleware=middleware)
    app.answer_cache = cache
    app.reads = reads
    media.install(app)
    errors.install(app)

    ledger = Ledger(pool, now, changes, metrics)
    overdue_after = {source: timedelta(seconds=s) for source, s in config.overdue_after_s}
    app.add_route("/health", HealthResource(pool, ledger, overdue_after, reads))
    app.add_route("/openapi.json", OpenAPIResource())
    app.add_route("/metrics", MetricsResource(metrics, pool))
    app.add_route("/docs", DocsResource())
    app.add_sink(docs.assets(), docs.PREFIX + "/")
    versions = web.fingerprints()
    app.add_route("/", web.PageResource(versions))
    app.add_sink(web.Assets(web.PREFIX, web.WEB, versions=versions), web.PREFIX + "/")
    app.add_route(f"{API}/relay-in", RelayInResource(ledger, runners))
    app.add_route(f"{API}/relay-in/runs", RunsResource(ledger))
    for runner in runners.values():
        app.add_route(f"{API}/relay-in/{runner.name}", SourceRelayInResource(ledger, runner))
    template = config.source("coinapi").symbol_template
    records = RecordsResource(Trades(reads, cache), template)
    app.add_route(f"{API}/relay-out", records)
    app.add_route(f"{API}/relay-out/records", records)
    market_answers = Markets(reads, cache, {name: s.market for name, s in MARKETS.items()})
    app.add_route(f"{API}/relay-out/symbols", SymbolsResource(market_answers))
    app.add_route(f"{API}/relay-out/price", PriceResource(market_answers))
    app.add_route(f"{API}/relay-out/profit", ProfitResource(market_answers))
    app.add_route(f"{API}/relay-out/candles", CandlesResource(market_answers))
    app.add_route(f"{API}/relay-out/dashboard", DashboardResource(coins))
    app.add_route(f"{API}/relay-out/search", SearchResource(coins))
    app.add_route(f"{API}/relay-out/coins/{{coin_id}}/logo", CoinLogoResource(coins))
    app.add_route(f"{API}/relay-out/assets/{{symbol}}/logo", LogoResource(coins))
    app.add_route(f"{API}/relay-out/rates", RatesResource(fx))
    app.add_route(f"{API}/relay-out/rates/series", SeriesResource(fx))
    app.add_route(f"{API}/relay-out/convert", ConvertResource(fx))
    return app


def get_app() -> falcon.App:
    """Build the production app from the environment, with its own pool."""
    configure_logging()
    config = Config.from_env()
    pool = db.make_pool(
        config.database_url,
        min_size=config.db_pool_min,
        max_size=config.db_pool_max,
        timeout=config.db_timeout_s,
    )
    # Connections are made in the background: a database that is down at
    # start makes requests answer 503 until it is back, not the worker crash.
    pool.open(wait=False)
    replica = None
    if config.replica_url:
        # A short wait: a replica that cannot lend a connection soon is passed over for
        # the primary (and probed in the background), not waited on by every request.
        replica = make_replica_pool(
            config.replica_url,
            min_size=config.db_pool_min,
            max_size=config.db_pool_max,
            timeout=min(1.0, config.db_timeout_s),
        )
        replica.open(wait=False)
    # The listener both keeps revocations current and validates cached answers;
    # RELAY_ANSWER_CACHE=off keeps the first and drops the second (for measuring).
    changes = Changes(config.database_url).start()
    return create_app(config, pool, changes=changes, replica=replica)


_app: falcon.App | None = None


def __getattr__(name: str):
    # gunicorn resolves ``relay.app:app`` with getattr(), so the app is built
    # in the worker that serves it (after the fork), and importing this module
    # (as tests do, for create_app) reads no environment.
    global _app
    if name == "app":
        if _app is None:
            _app = get_app()
        return _app
    raise AttributeError(name)
