"""Read every setting from the environment, once, in one place.

Nothing else in relay touches ``os.environ``: the app factory, the CLI and
the tests all receive a :class:`Config`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping

MIN_SECRET_LENGTH = 32
# gunicorn's limit_request_line (its most). A query one byte over our limit, behind a path
# of up to 1 KiB, must still fit in it, so that the app answers 414 in our envelope
# rather than gunicorn in its HTML: RELAY_MAX_QUERY_BYTES can be at most this much less.
REQUEST_LINE_LIMIT = 8190
MAX_QUERY_BYTES_CEILING = REQUEST_LINE_LIMIT - 1024
DEFAULT_MAX_BODY_BYTES = 64 * 1024


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it."""


@dataclasses.dataclass(frozen=True)
class Config:
    database_url: str
    jwt_secrets: tuple[str, ...]
    coinapi_url: str = "https://rest.coinapi.io"
    coinapi_key: str = ""
    coinapi_symbol_template: str = "BITSTAMP_SPOT_{code}_USD"
    coinapi_symbols: tuple[str, ...] = ("BTC",)
    coinapi_backfill_hours: int = 24
    coinapi_page_limit: int = 1000
    binance_url: str = "https://api.binance.com"
    binance_symbols: tuple[str, ...] = ("ADABTC", "ADAUSDT", "BTCUSDT")
    binance_backfill_hours: int = 48
    binance_weight_limit: int = 6000
    ecb_url: str = "https://www.ecb.europa.eu/stats/eurofxref"
    cmc_url: str = "https://pro-api.coinmarketcap.com"
    cmc_api_key: str = ""
    cmc_limit: int = 200
    # where logos may be downloaded from: host or host:port entries
    cmc_logo_hosts: tuple[str, ...] = ("s2.coinmarketcap.com",)
    relay_in_budget_s: float = 20.0
    # /health calls a source overdue when its last successful run is older than this
    overdue_after_s: tuple[tuple[str, int], ...] = (
        ("coinapi", 30 * 60),
        ("binance", 2 * 3600),
        ("cmc", 2 * 3600),
        ("ecb", 2 * 86400),
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

    def __post_init__(self):
        check_secrets(self.jwt_secrets)
        if "{code}" not in self.coinapi_symbol_template:
            raise ConfigError("COINAPI_SYMBOL_TEMPLATE must contain '{code}'")

    def replace(self, **changes) -> Config:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Build the configuration from environment variables.

        Raises ConfigError naming the first missing or malformed variable.
        """
        env = os.environ if environ is None else environ
        return cls(
            database_url=normalize_database_url(_required(env, "DATABASE_URL")),
            jwt_secrets=parse_secrets(_required(env, "RELAY_JWT_SECRET")),
            coinapi_url=_url(env, "COINAPI_URL", cls.coinapi_url),
            coinapi_key=env.get("COINAPI_KEY", ""),
            coinapi_symbol_template=env.get("COINAPI_SYMBOL_TEMPLATE", cls.coinapi_symbol_template),
            coinapi_symbols=_list(env, "COINAPI_SYMBOLS", cls.coinapi_symbols),
            coinapi_backfill_hours=_int(
                env, "COINAPI_BACKFILL_HOURS", cls.coinapi_backfill_hours, 1, 24 * 365
            ),
            coinapi_page_limit=_int(env, "COINAPI_PAGE_LIMIT", cls.coinapi_page_limit, 2, 100_000),
            binance_url=_url(env, "BINANCE_URL", cls.binance_url),
            binance_symbols=_list(env, "BINANCE_SYMBOLS", cls.binance_symbols),
            binance_backfill_hours=_int(
                env, "BINANCE_BACKFILL_HOURS", cls.binance_backfill_hours, 1, 24 * 365
            ),
            binance_weight_limit=_int(
                env, "BINANCE_WEIGHT_LIMIT", cls.binance_weight_limit, 10, 1_000_000
            ),
            ecb_url=_url(env, "ECB_URL", cls.ecb_url),
            cmc_url=_url(env, "CMC_URL", cls.cmc_url),
            cmc_api_key=env.get("CMC_API_KEY", ""),
            cmc_limit=_int(env, "CMC_LIMIT", cls.cmc_limit, 1, 5000),
            cmc_logo_hosts=_list(env, "CMC_LOGO_HOSTS", cls.cmc_logo_hosts),
            relay_in_budget_s=_float(env, "RELAY_IN_BUDGET_S", cls.relay_in_budget_s, 0.1, 3600),
            overdue_after_s=_overdue(env, "RELAY_OVERDUE_AFTER", cls.overdue_after_s),
            upstream_timeout_s=_float(
                env, "RELAY_UPSTREAM_TIMEOUT", cls.upstream_timeout_s, 0.1, 600
            ),
            metrics_dir=env.get("PROMETHEUS_MULTIPROC_DIR") or None,
            answer_cache=_flag(env, "RELAY_ANSWER_CACHE", cls.answer_cache),
            answer_cache_mb=_int(env, "RELAY_ANSWER_CACHE_MB", cls.answer_cache_mb, 1, 4096),
            cors_origins=_list(env, "RELAY_CORS_ORIGINS", cls.cors_origins),
            max_query_bytes=_int(
                env, "RELAY_MAX_QUERY_BYTES", cls.max_query_bytes, 256, MAX_QUERY_BYTES_CEILING
            ),
            max_body_bytes=_max_body_bytes(env),
            db_pool_min=_int(env, "RELAY_DB_POOL_MIN", cls.db_pool_min, 0, 100),
            db_pool_max=_int(env, "RELAY_DB_POOL_MAX", cls.db_pool_max, 1, 100),
            db_timeout_s=_float(env, "RELAY_DB_TIMEOUT", cls.db_timeout_s, 0.1, 60),
        )


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
    return parse_secrets(_required(env, "RELAY_JWT_SECRET"))


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
        port=_int(env, "PORT", ServerSettings.port, 1, 65535),
        workers=_int(env, "WEB_CONCURRENCY", ServerSettings.workers, 1, 64),
        max_body_bytes=_max_body_bytes(env),
    )


def _max_body_bytes(env: Mapping[str, str]) -> int:
    # Read in one place: the app refuses larger bodies, the worker buffers up to this.
    return _int(env, "RELAY_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, 1024, 1 << 26)


def _host(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip().removeprefix("[").removesuffix("]")
    if not raw:
        return default
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        raise ConfigError(f"{name} must be an IP address such as 127.0.0.1, got {raw!r}") from None


def normalize_database_url(url: str) -> str:
    """Accept Heroku's ``postgres://`` scheme as well as ``postgresql://``."""
    if url.startswith("postgres://"):
        return "postgresql://" + url[len("postgres://") :]
    return url


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is required but not set")
    return value


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must be an http(s) URL")
    return value.rstrip("/")


def _list(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "on", "yes"):
        return True
    if raw in ("0", "false", "off", "no"):
        return False
    raise ConfigError(f"{name} must be on or off, got {raw!r}")


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
        merged[source.strip()] = int(text[:-1]) * _UNITS[text[-1]]
    return tuple(merged.items())


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value
