"""Read every setting from the environment, once, in one place.

Nothing else in relay touches ``os.environ``: the app factory, the CLI and
the tests all receive a :class:`Config`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from relay import env as env_
from relay.env import ConfigError
from relay.sources.registry import SOURCES

MIN_SECRET_LENGTH = 32
# gunicorn's limit_request_line (its most). A query one byte over our limit, behind a path
# of up to 1 KiB, must still fit in it, so that the app answers 414 in our envelope
# rather than gunicorn in its HTML: RELAY_MAX_QUERY_BYTES can be at most this much less.
REQUEST_LINE_LIMIT = 8190
MAX_QUERY_BYTES_CEILING = REQUEST_LINE_LIMIT - 1024
DEFAULT_MAX_BODY_BYTES = 64 * 1024


def _default_sources() -> dict[str, Any]:
    return {source.name: source.settings() for source in SOURCES}


# Retention below a day would drop the month the ingest is writing on its first day.
MIN_RETENTION = timedelta(days=1)


def retain_candles_from_env(env: Mapping[str, str]) -> timedelta | None:
    return env_.duration(env, "RELAY_RETAIN_CANDLES_1M", MIN_RETENTION)


def retain_trades_from_env(env: Mapping[str, str]) -> timedelta | None:
    return env_.duration(env, "RELAY_RETAIN_TRADES", MIN_RETENTION)


def _default_overdue() -> tuple[tuple[str, int], ...]:
    return tuple((s.name, int(s.overdue_after.total_seconds())) for s in SOURCES)


@dataclasses.dataclass(frozen=True)
class Config:
    database_url: str
    jwt_secrets: tuple[str, ...]
    # each source's own settings (relay/sources/<name>/settings.py), by source name
    sources: Mapping[str, Any] = dataclasses.field(default_factory=_default_sources)
    relay_in_budget_s: float = 20.0
    # symbols one relay-in works on at once (each symbol's pages stay in order)
    relay_in_concurrency: int = 8
    # /health calls a source overdue when its last successful run is older than this
    overdue_after_s: tuple[tuple[str, int], ...] = dataclasses.field(
        default_factory=_default_overdue
    )
    upstream_timeout_s: float = 10.0
    answer_cache: bool = True
    # each worker's answer cache holds at most this many MiB of serialized answers
    answer_cache_mb: int = 32
    # where gunicorn workers share metric values (set by gunicorn.conf.py); None: in-process
    metrics_dir: str | None = None
    cors_origins: tuple[str, ...] = ()
    max_query_bytes: int = 4096
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    db_pool_min: int = 1
    db_pool_max: int = 4
    db_timeout_s: float = 5.0
    # raw 1-minute candles older than this are removed (whole months); None keeps all
    retain_candles_1m: timedelta | None = None
    # CoinAPI trades older than this are removed (whole months); None keeps all
    retain_trades: timedelta | None = None
    # a read replica (a Heroku follower) for relay-out reads; None: the primary serves them
    replica_url: str | None = None

    def __post_init__(self):
        check_secrets(self.jwt_secrets)

    def source(self, name: str) -> Any:
        """A source's settings, e.g. ``config.source("binance").url``."""
        return self.sources[name]

    def replace(self, **changes) -> Config:
        """A copy with changes; a source's setting is named as its variable, lowercased.

        ``config.replace(binance_url=..., relay_in_budget_s=5)`` changes ``BINANCE_URL``'s
        setting of the binance source and a shared one.
        """
        sources = dict(self.sources)
        for key in [k for k in changes if k not in _SHARED]:
            name, field = _source_field(key)
            sources[name] = dataclasses.replace(sources[name], **{field: changes.pop(key)})
        return dataclasses.replace(self, sources=sources, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Build the configuration from environment variables.

        Raises ConfigError naming the first missing or malformed variable.
        """
        env = os.environ if environ is None else environ
        return cls(
            database_url=normalize_database_url(env_.required(env, "DATABASE_URL")),
            jwt_secrets=parse_secrets(env_.required(env, "RELAY_JWT_SECRET")),
            sources={source.name: source.settings.from_env(env) for source in SOURCES},
            relay_in_budget_s=env_.number(
                env, "RELAY_IN_BUDGET_S", cls.relay_in_budget_s, 0.1, 3600
            ),
            relay_in_concurrency=env_.whole(
                env, "RELAY_IN_CONCURRENCY", cls.relay_in_concurrency, 1, 64
            ),
            overdue_after_s=_overdue(env, "RELAY_OVERDUE_AFTER", _default_overdue()),
            upstream_timeout_s=env_.number(
                env, "RELAY_UPSTREAM_TIMEOUT", cls.upstream_timeout_s, 0.1, 600
            ),
            metrics_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
            answer_cache=env_.flag(env, "RELAY_ANSWER_CACHE", cls.answer_cache),
            answer_cache_mb=env_.whole(env, "RELAY_ANSWER_CACHE_MB", cls.answer_cache_mb, 1, 4096),
            cors_origins=env_.names(env, "RELAY_CORS_ORIGINS", cls.cors_origins),
            max_query_bytes=env_.whole(
                env, "RELAY_MAX_QUERY_BYTES", cls.max_query_bytes, 256, MAX_QUERY_BYTES_CEILING
            ),
            max_body_bytes=_max_body_bytes(env),
            db_pool_min=env_.whole(env, "RELAY_DB_POOL_MIN", cls.db_pool_min, 0, 100),
            db_pool_max=env_.whole(env, "RELAY_DB_POOL_MAX", cls.db_pool_max, 1, 100),
            db_timeout_s=env_.number(env, "RELAY_DB_TIMEOUT", cls.db_timeout_s, 0.1, 60),
            retain_candles_1m=retain_candles_from_env(env),
            retain_trades=retain_trades_from_env(env),
            replica_url=_optional_database_url(env, "DATABASE_REPLICA_URL"),
        )


_SHARED = frozenset(field.name for field in dataclasses.fields(Config))


def _source_field(key: str) -> tuple[str, str]:
    """``binance_weight_limit`` -> ("binance", "weight_limit"), or TypeError naming it."""
    for source in SOURCES:
        field = key.removeprefix(source.settings.PREFIX.lower() + "_")
        if field != key and field in {f.name for f in dataclasses.fields(source.settings)}:
            return source.name, field
    raise TypeError(f"Config has no setting {key!r}")


def parse_secrets(value: str) -> tuple[str, ...]:
    """Split a comma-separated secret list: the first signs, all verify."""
    return check_secrets(tuple(part.strip() for part in value.split(",") if part.strip()))


def check_secrets(secrets: tuple[str, ...]) -> tuple[str, ...]:
    if not secrets:
        raise ConfigError("RELAY_JWT_SECRET is required but not set")
    for secret in secrets:
        if len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"RELAY_JWT_SECRET: each secret must be at least {MIN_SECRET_LENGTH} characters"
            )
    return secrets


def jwt_secrets_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Read only the token secrets (minting a token needs no database)."""
    env = os.environ if environ is None else environ
    return parse_secrets(env_.required(env, "RELAY_JWT_SECRET"))


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """What gunicorn and its workers need: where to listen, how many, the body limit."""

    # Heroku's router reaches the dyno on its own interface; `relay serve` says 127.0.0.1.
    host: str = "0.0.0.0"  # noqa: S104
    port: int = 8000
    workers: int = 2
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES

    @property
    def bind(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def server_settings(environ: Mapping[str, str] | None = None) -> ServerSettings:
    """Read RELAY_BIND, PORT and WEB_CONCURRENCY (Heroku's meaning) and the body limit."""
    env = os.environ if environ is None else environ
    return ServerSettings(
        host=_host(env, "RELAY_BIND", ServerSettings.host),
        port=env_.whole(env, "PORT", ServerSettings.port, 1, 65535),
        workers=env_.whole(env, "WEB_CONCURRENCY", ServerSettings.workers, 1, 64),
        max_body_bytes=_max_body_bytes(env),
    )


def _max_body_bytes(env: Mapping[str, str]) -> int:
    # Read in one place: the app refuses larger bodies, the worker buffers up to this.
    return env_.whole(env, "RELAY_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, 1024, 1 << 26)


def _host(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip().removeprefix("[").removesuffix("]")
    if not raw:
        return default
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        raise ConfigError(f"{name} must be an IP address such as 127.0.0.1, got {raw!r}") from None


def _optional_database_url(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return normalize_database_url(value) if value else None


def normalize_database_url(url: str) -> str:
    """Accept Heroku's ``postgres://`` scheme as well as ``postgresql://``."""
    if url.startswith("postgres://"):
        return "postgresql://" + url[len("postgres://") :]
    return url


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _overdue(
    env: Mapping[str, str], name: str, default: tuple[tuple[str, int], ...]
) -> tuple[tuple[str, int], ...]:
    """Read ``coinapi=30m,ecb=2d`` over the defaults."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    merged = dict(default)
    for part in raw.split(","):
        source, _, text = part.strip().partition("=")
        text = text.strip()
        if not source or not text or text[-1] not in _UNITS or not text[:-1].isdigit():
            raise ConfigError(f"{name} must look like coinapi=30m,ecb=2d, got {part.strip()!r}")
        if source.strip() not in merged:
            raise ConfigError(f"{name}: no source {source.strip()!r} (one of {', '.join(merged)})")
        merged[source.strip()] = int(text[:-1]) * _UNITS[text[-1]]
    return tuple(merged.items())
