"""Heroku's conventions: app.json agrees with the Procfile, the config and the Python version."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from relay.config import Config, ConfigError

ROOT = Path(__file__).resolve().parent.parent
# What app.json may say (Heroku's app.json schema, the parts this app uses).
TOP_LEVEL = {
    "name", "description", "keywords", "website", "repository", "logo", "success_url",
    "scripts", "env", "formation", "addons", "buildpacks", "environments", "stack", "image",
}  # fmt: skip
ENV_FIELDS = {"description", "value", "required", "generator"}
# The config var each add-on attaches by default, when app.json does not say "as".
ADDON_VARS = {"heroku-postgresql": "DATABASE"}


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((ROOT / "app.json").read_text())


@pytest.fixture(scope="module")
def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip())


def required_by_config() -> set[str]:
    """The variables Config.from_env stops without, found by asking it until it starts."""
    env: dict[str, str] = {}
    while True:
        try:
            Config.from_env(env)
        except ConfigError as exc:
            name, _, rest = str(exc).partition(" ")
            assert rest == "is required but not set", exc
            env[name] = "x" * 48
            continue
        return set(env)


def test_app_json_follows_the_schema(manifest):
    assert set(manifest) <= TOP_LEVEL
    assert re.fullmatch(r"[a-z][a-z0-9-]{2,29}", manifest["name"])
    assert 0 < len(manifest["description"]) <= 140
    for name, var in manifest["env"].items():
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name)
        assert set(var) <= ENV_FIELDS and var["description"], name
        assert var.get("generator", "secret") == "secret", name
        assert isinstance(var.get("required", True), bool), name
    for process in manifest["formation"].values():
        assert isinstance(process["quantity"], int) and process["quantity"] >= 0


def test_processes_are_the_procfiles(manifest, procfile):
    assert procfile["release"].split() == ["python", "-m", "relay", "migrate"]
    assert procfile["web"].split()[:3] == ["gunicorn", "-c", "gunicorn.conf.py"]
    formation = manifest["formation"]
    assert set(formation) <= set(procfile) - {"release"}  # release runs once per deploy
    assert formation["web"]["quantity"] >= 1
    # Heroku Scheduler fires the relay-ins, so the clock process (the same jobs) stays off.
    assert formation.get("clock", {"quantity": 0})["quantity"] == 0


def test_addons_are_postgres_and_scheduler(manifest):
    plans = {
        (addon if isinstance(addon, str) else addon["plan"]).split(":")[0]
        for addon in manifest["addons"]
    }
    assert plans == {"heroku-postgresql", "scheduler"}


def test_required_variables_are_the_ones_the_config_requires(manifest):
    attached = {
        (addon.get("as") or ADDON_VARS[addon["plan"].split(":")[0]]) + "_URL"
        for addon in manifest["addons"]
        if isinstance(addon, dict) and addon["plan"].startswith("heroku-postgresql")
    }
    required = {name for name, var in manifest["env"].items() if var.get("required", True)}
    assert attached == {"DATABASE_URL"}
    assert required | attached == required_by_config() == {"DATABASE_URL", "RELAY_JWT_SECRET"}
    # The token secret is made by Heroku when the app is created, never written here.
    assert manifest["env"]["RELAY_JWT_SECRET"] == {
        "description": manifest["env"]["RELAY_JWT_SECRET"]["description"],
        "generator": "secret",
    }


def test_every_variable_named_is_one_the_code_reads(manifest):
    code = "\n".join(
        path.read_text()
        for folder in ("relay", "scheduler")
        for path in (ROOT / folder).rglob("*.py")
    )
    for name in manifest["env"]:
        assert f'"{name}"' in code, f"{name} is in app.json but nothing reads it"
    # The Scheduler add-on's jobs (python -m scheduler fire) need these two.
    assert {"RELAY_URL", "RELAY_TOKEN"} <= set(manifest["env"])


def test_python_version_agrees_with_runtime_txt():
    runtime = (ROOT / "runtime.txt").read_text().strip()
    wanted = (ROOT / ".python-version").read_text().strip()
    assert re.fullmatch(r"python-3\.\d+\.\d+", runtime)
    assert re.fullmatch(r"3\.\d+", wanted)  # Heroku's form: the major version, newest patch
    assert runtime.removeprefix("python-").split(".")[:2] == wanted.split(".")
