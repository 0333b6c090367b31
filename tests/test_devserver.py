"""``python -m relay serve``: the clock runs in-process, fires each source once at start,
skips a source whose key is missing, and is off with ``--no-clock``.

The real command runs as a subprocess over a database of its own, against loopback
upstreams (tests/upstreams.py); what it did is read from the upstreams' request logs
and from the relay-in ledger (``/relay-in/runs``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from pytest_httpserver import HTTPServer

from tests.conftest import SECRET, bearer, eventually, fresh_database
from tests.served import free_port, healthy, stop
from tests.upstreams import FakeBinance, FakeCMC, FakeCoinAPI, FakeCoinbase, FakeECB

ROOT = Path(__file__).resolve().parent.parent
KEYED = ("COINAPI_KEY", "CMC_API_KEY")


@pytest.fixture
def upstreams():
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    cmc = FakeCMC()
    fakes = {
        "coinapi": FakeCoinAPI(server, key="serve-coinapi-key", synthetic_per_s=1),
        "binance": FakeBinance(server, synthetic=True),
        "coinbase": FakeCoinbase(server, synthetic=True, rate=100, burst=100),
        "ecb": FakeECB(server),
        "cmc": cmc,
    }
    fakes["ecb"].serve_recorded()
    base = server.url_for("/").rstrip("/")
    env = {
        "COINAPI_URL": base, "COINAPI_KEY": "serve-coinapi-key", "COINAPI_BACKFILL_HOURS": "1",
        "BINANCE_URL": base, "BINANCE_SYMBOLS": "BTCUSDT", "BINANCE_BACKFILL_HOURS": "1",
        "COINBASE_URL": base, "COINBASE_PRODUCTS": "BTC-USD", "COINBASE_BACKFILL_HOURS": "1",
        "ECB_URL": base, "CMC_URL": cmc.url,
    }  # fmt: skip
    yield fakes, env
    cmc.stop()
    server.clear()
    server.stop()


@contextlib.contextmanager
def serving(server_url, tmp_path, env_extra, *args):
    """``python -m relay serve ARGS`` on a free port over a fresh database; its log after."""
    with fresh_database(server_url, prefix="relay_devserver") as url:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in KEYED}
        env.update({"DATABASE_URL": url, "RELAY_JWT_SECRET": SECRET, "PORT": str(port),
                    "WEB_CONCURRENCY": "1", **env_extra})  # fmt: skip
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        log = tmp_path / "serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "relay", "serve", *args],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            assert eventually(lambda: healthy(base), timeout=30), log.read_text()
            yield base, log, proc
        finally:
            stop(proc, grace_s=40)


def runs(base: str) -> list[dict]:
    resp = requests.get(
        f"{base}/relay-api/v1/relay-in/runs", params={"limit": 200},
        headers=bearer("relay:in"), timeout=10,
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]["runs"]


def test_serve_fires_each_configured_source_once_and_skips_one_without_its_key(
    server_url, tmp_path, upstreams
):
    fakes, env = upstreams
    with serving(server_url, tmp_path, env) as (base, log, proc):
        wanted = {"coinapi", "binance", "coinbase", "ecb"}
        assert eventually(
            lambda: {r["source"] for r in runs(base) if r["status"] == "succeeded"} == wanted,
            timeout=45,
        ), (runs(base), log.read_text()[-3000:])
        time.sleep(1)
        done = runs(base)
        assert sorted(r["source"] for r in done) == sorted(wanted), [
            (r["source"], r["status"], r.get("error"), r.get("started_at")) for r in done
        ]
        assert {r["fired_by"] for r in done} == {"clock"}
        assert fakes["coinapi"].requests and fakes["binance"].requests
        assert fakes["coinbase"].requests and fakes["ecb"].requests
        assert fakes["cmc"].requests == []
        text = log.read_text()
        assert "cmc skipped: CMC_API_KEY is not set" in text, text
        assert "coinapi skipped" not in text

        # Stopping serve stops its clock: the process exits whole, and nothing more is fired.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(40) == 0
        asked = {name: len(fake.requests) for name, fake in fakes.items()}
        time.sleep(1.5)
        assert {name: len(fake.requests) for name, fake in fakes.items()} == asked


def test_serve_with_no_clock_fires_nothing(server_url, tmp_path, upstreams):
    fakes, env = upstreams
    extra = {**env, "CMC_API_KEY": "test-cmc-key"}
    with serving(server_url, tmp_path, extra, "--no-clock") as (base, log, _):
        time.sleep(3)
        assert runs(base) == []
        for fake in fakes.values():
            assert fake.requests == []
        assert "clock: off" in log.read_text()


def test_serve_on_a_port_in_use_stops_at_once_and_fires_nothing(server_url, tmp_path, upstreams):
    fakes, env = upstreams
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with fresh_database(server_url, prefix="relay_devserver") as url:
            run = {k: v for k, v in os.environ.items() if k not in KEYED}
            run.update({**env, "DATABASE_URL": url, "RELAY_JWT_SECRET": SECRET, "PORT": str(port)})
            done = subprocess.run(
                [sys.executable, "-m", "relay", "serve"], cwd=ROOT, env=run,
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
    assert done.returncode == 2
    assert f"port {port} is in use; set PORT" in done.stderr
    assert all(fake.requests == [] for fake in fakes.values())


def test_an_error_before_serving_leaves_no_server_behind(server_url, tmp_path):
    # A schedule naming no known source stops the start; no gunicorn may outlive it.
    schedule = tmp_path / "schedule.toml"
    schedule.write_text('[jobs.nosuch]\ncron = "* * * * *"\n')
    port = free_port()
    script = (
        "import os, sys\nfrom pathlib import Path\nfrom relay import devserver\n"
        "sys.exit(devserver.run(dict(os.environ), os.environ['RELAY_JWT_SECRET'],"
        " schedule=Path(sys.argv[1])))\n"
    )
    with fresh_database(server_url, prefix="relay_devserver") as url:
        run = {**os.environ, "DATABASE_URL": url, "RELAY_JWT_SECRET": SECRET, "PORT": str(port)}
        run.update({"RELAY_BIND": "127.0.0.1"})
        done = subprocess.run(
            [sys.executable, "-c", script, str(schedule)], cwd=ROOT, env=run,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        time.sleep(2)  # time enough for a stray gunicorn to have bound its port
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/health", timeout=2)
    assert done.returncode != 0
    assert "nosuch" in done.stderr
