"""Configuration comes from the environment and fails early, naming the setting."""

from __future__ import annotations

import pytest

from relay.__main__ import serve_environment
from relay.config import MAX_QUERY_BYTES_CEILING, Config, ConfigError, server_settings

GOOD = {
    "DATABASE_URL": "postgres://u:p@db.example:5432/relay",
    "RELAY_JWT_SECRET": "a" * 32 + ", " + "b" * 40,
}


def test_defaults_and_heroku_url_scheme():
    config = Config.from_env(GOOD)
    assert config.database_url == "postgresql://u:p@db.example:5432/relay"
    assert config.jwt_secrets == ("a" * 32, "b" * 40)
    coinapi = config.source("coinapi")
    assert coinapi.url == "https://rest.coinapi.io"
    assert coinapi.symbol_template == "BITSTAMP_SPOT_{code}_USD"
    assert coinapi.backfill_hours == 24
    assert config.relay_in_budget_s == 20.0
    assert config.relay_in_concurrency == 8
    assert Config.from_env({**GOOD, "RELAY_IN_CONCURRENCY": "2"}).relay_in_concurrency == 2
    assert config.answer_cache_mb == 32
    assert Config.from_env({**GOOD, "RELAY_ANSWER_CACHE_MB": "8"}).answer_cache_mb == 8
    assert server_settings({}).bind == "0.0.0.0:8000"
    assert (server_settings({}).port, server_settings({}).workers) == (8000, 2)
    given = server_settings({"PORT": "5000", "WEB_CONCURRENCY": "3"})
    assert (given.port, given.workers) == (5000, 3)


def test_a_read_replica_is_optional_and_given_as_heroku_gives_it():
    assert Config.from_env(GOOD).replica_url is None
    assert Config.from_env({**GOOD, "DATABASE_REPLICA_URL": " "}).replica_url is None
    follower = {**GOOD, "DATABASE_REPLICA_URL": "postgres://u:p@follower.example:5432/relay"}
    assert Config.from_env(follower).replica_url == "postgresql://u:p@follower.example:5432/relay"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"RELAY_JWT_SECRET": "a" * 32}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://x/y"}, "RELAY_JWT_SECRET"),
        ({**GOOD, "RELAY_JWT_SECRET": "short"}, "RELAY_JWT_SECRET"),
        ({**GOOD, "RELAY_JWT_SECRET": "a" * 32 + ",short"}, "RELAY_JWT_SECRET"),
        ({**GOOD, "COINAPI_BACKFILL_HOURS": "lots"}, "COINAPI_BACKFILL_HOURS"),
        ({**GOOD, "COINAPI_BACKFILL_HOURS": "0"}, "COINAPI_BACKFILL_HOURS"),
        ({**GOOD, "RELAY_IN_BUDGET_S": "-1"}, "RELAY_IN_BUDGET_S"),
        ({**GOOD, "RELAY_IN_CONCURRENCY": "0"}, "RELAY_IN_CONCURRENCY"),
        ({**GOOD, "RELAY_IN_CONCURRENCY": "65"}, "RELAY_IN_CONCURRENCY"),
        ({**GOOD, "RELAY_ANSWER_CACHE_MB": "0"}, "RELAY_ANSWER_CACHE_MB"),
        ({**GOOD, "RELAY_ANSWER_CACHE_MB": "lots"}, "RELAY_ANSWER_CACHE_MB"),
        ({**GOOD, "COINAPI_URL": "ftp://x"}, "COINAPI_URL"),
        ({**GOOD, "COINAPI_SYMBOL_TEMPLATE": "BITSTAMP_SPOT_BTC_USD"}, "COINAPI_SYMBOL_TEMPLATE"),
    ],
)
def test_missing_or_bad_settings_fail_naming_them(env, named):
    with pytest.raises(ConfigError, match=named) as info:
        Config.from_env(env)
    # The message never echoes a secret's value.
    assert "short" not in str(info.value)


def test_bad_port_fails_naming_it():
    with pytest.raises(ConfigError, match="PORT"):
        server_settings({"PORT": "http"})


def test_the_development_server_binds_loopback_and_production_what_it_is_told():
    assert server_settings(serve_environment({"PORT": "8123"})).bind == "127.0.0.1:8123"
    everywhere = {"RELAY_BIND": "::"}
    assert server_settings(serve_environment(everywhere)).host == "127.0.0.1"
    assert server_settings({"RELAY_BIND": "::", "PORT": "80"}).bind == "[::]:80"
    assert server_settings({"RELAY_BIND": "[::1]"}).host == "::1"
    with pytest.raises(ConfigError, match="RELAY_BIND"):
        server_settings({"RELAY_BIND": "example.com"})


def test_the_query_limit_must_fit_under_gunicorns_request_line_limit():
    ceiling = {**GOOD, "RELAY_MAX_QUERY_BYTES": str(MAX_QUERY_BYTES_CEILING)}
    assert Config.from_env(ceiling).max_query_bytes == MAX_QUERY_BYTES_CEILING
    with pytest.raises(ConfigError, match="RELAY_MAX_QUERY_BYTES"):
        Config.from_env({**GOOD, "RELAY_MAX_QUERY_BYTES": str(MAX_QUERY_BYTES_CEILING + 1)})


def test_the_body_limit_is_read_once_for_the_app_and_the_worker():
    env = {**GOOD, "RELAY_MAX_BODY_BYTES": "2048"}
    assert Config.from_env(env).max_body_bytes == server_settings(env).max_body_bytes == 2048
