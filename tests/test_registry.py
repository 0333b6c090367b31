"""Every source is declared once, and everything that lists sources follows the registry."""

from __future__ import annotations

import dataclasses

import pytest

from relay import openapi
from relay.changes import Changes
from relay.config import Config
from relay.sources import registry
from scheduler.clock import load_schedule
from tests.conftest import SECRET
from tests.upstreams import FAKES

NAMES = [source.name for source in registry.SOURCES]
GOOD = {"DATABASE_URL": "postgresql://x/y", "RELAY_JWT_SECRET": SECRET}


def test_names_are_unique_and_every_source_has_a_fake_upstream():
    assert len(set(NAMES)) == len(NAMES)
    assert set(FAKES) == set(NAMES)


def test_configuration_health_and_the_clock_loop_over_the_registry():
    config = Config.from_env(GOOD)
    assert list(config.sources) == NAMES
    assert [name for name, _ in config.overdue_after_s] == NAMES
    assert {job.source for job in load_schedule()} == set(NAMES)
    assert set(Changes("").concerns) == {source.concern for source in registry.SOURCES}


def test_each_source_reads_its_own_variables_by_its_prefix():
    for source in registry.SOURCES:
        field = next(f for f in dataclasses.fields(source.settings) if f.name == "url")
        variable = f"{source.settings.PREFIX}_URL"
        settings = source.settings.from_env({variable: "http://127.0.0.1:1/x/"})
        assert settings.url == "http://127.0.0.1:1/x", variable
        assert field.default.startswith("https://")
        key = f"{source.settings.PREFIX.lower()}_url"
        assert Config.from_env(GOOD).replace(**{key: "http://h"}).source(source.name).url == (
            "http://h"
        )


def test_replace_refuses_a_setting_no_source_has():
    with pytest.raises(TypeError, match="binance_colour"):
        Config.from_env(GOOD).replace(binance_colour="red")


def test_the_document_offers_a_body_only_to_sources_that_take_symbols():
    paths = openapi.document()["paths"]
    for source in registry.SOURCES:
        post = paths[f"{openapi.API}/relay-in/{source.name}"]["post"]
        assert ("requestBody" in post) is source.takes_symbols, source.name
    assert openapi.SOURCES == NAMES
