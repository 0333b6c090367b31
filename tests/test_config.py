"""Configuration comes from the environment and fails early, naming the setting."""

from __future__ import annotations

import pytest

from relay.config import Config, ConfigError, server_settings

GOOD = {
    "DATABASE_URL": "postgres://u:p@db.example:5432/relay",
    "RELAY_JWT_SECRET": "a" * 32 + ", " + "b" * 40,
}


def test_defaults_and_heroku_url_scheme():
    config = Config.from_env(GOOD)
    assert config.database_url == "postgresql://u:p@db.example:5432/relay"
    assert config.jwt_secrets == ("a" * 32, "b" * 40)
    assert config.coinapi_url == "https://rest.coinapi.io"
    assert config.coinapi_symbol_template == "BITSTAMP_SPOT_{code}_USD"
    assert config.coinapi_backfill_hours == 24
    assert config.relay_in_budget_s == 20.0
    assert config.answer_cache_mb == 32
    assert Config.from_env({**GOOD, "RELAY_ANSWER_CACHE_MB": "8"}).answer_cache_mb == 8
    assert server_settings({}) == (8000, 2)
    assert server_settings({"PORT": "5000", "WEB_CONCURRENCY": "3"}) == (5000, 3)


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
