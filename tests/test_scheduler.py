"""The firing client and the clock, against real loopback servers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from werkzeug import Response

from scheduler.clock import START_SPACING_S, Clock, Job, load_schedule, trigger
from scheduler.fire import fire
from tests.conftest import eventually
from tests.hostile import HostileServer, drip

ROOT = Path(__file__).resolve().parent.parent
PATH = "/relay-api/v1/relay-in/coinapi"


def envelope(code, data=None, message="OK"):
    return json.dumps({"code": code, "message": message, "data": data or {}})


class Script:
    """Answers a loopback relay API gives, one per call, recording each request."""

    def __init__(self, httpserver, answers):
        self.answers = list(answers)
        self.requests = []
        httpserver.expect_request(PATH, method="POST").respond_with_handler(self)

    def __call__(self, request):
        self.requests.append(
            {"auth": request.headers.get("Authorization"), "body": request.get_data()}
        )
        status, body, *headers = self.answers.pop(0)
        if callable(body):
            return body()
        return Response(
            body,
            status=status,
            content_type="application/json",
            headers=headers[0] if headers else None,
        )


class _Top:
    """An rng whose jitter is always the full backoff."""

    def uniform(self, low, high):
        return high


FULL_JITTER = _Top()


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


def test_two_failures_then_success_is_three_attempts(httpserver):
    script = Script(
        httpserver,
        [(503, envelope(503)), (502, envelope(502)), (201, envelope(201, {"processed": 7}))],
    )
    sleeps = Sleeps()
    outcome = fire(httpserver.url_for("/"), "tok", "coinapi", ["BTC"], sleep=sleeps)
    assert outcome.ok and outcome.status == 201
    assert outcome.attempts == 3 and outcome.processed == 7
    assert len(sleeps) == 2 and all(0 <= s <= 2 for s in sleeps)  # jittered 1 s, 2 s caps
    assert script.requests[0]["auth"] == "Bearer tok"
    assert json.loads(script.requests[0]["body"]) == {"symbols": ["BTC"]}


def test_429_waits_for_retry_after(httpserver):
    Script(httpserver, [(429, envelope(429), {"Retry-After": "1"}), (204, "")])
    started = time.monotonic()
    outcome = fire(httpserver.url_for("/"), "tok", "coinapi")
    assert time.monotonic() - started >= 1.0
    assert outcome.ok and outcome.status == 204 and outcome.attempts == 2


def test_incomplete_answers_fire_again_at_once(httpserver):
    script = Script(
        httpserver,
        [
            (201, envelope(201, {"processed": 100, "complete": False})),
            (201, envelope(201, {"processed": 40, "complete": True})),
        ],
    )
    sleeps = Sleeps()
    outcome = fire(httpserver.url_for("/"), "tok", "coinapi", sleep=sleeps)
    assert outcome.processed == 140 and outcome.attempts == 2 and sleeps == []
    assert script.requests[0]["body"] == b""  # no symbols: the API's defaults


def test_a_server_that_never_answers_is_given_up_at_the_deadline(httpserver):
    release = threading.Event()
    Script(httpserver, [(0, lambda: release.wait(10) and Response("late"))] * 3)
    started = time.monotonic()
    try:
        outcome = fire(httpserver.url_for("/"), "tok", "coinapi", deadline_s=1.5)
    finally:
        release.set()
    assert time.monotonic() - started < 5
    assert not outcome.ok and outcome.status is None
    assert "Timeout" in outcome.error


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers"])
def test_an_answer_that_drips_is_cut_off_at_the_deadline(headers_too):
    server = HostileServer()
    head = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 99\r\n\r\n"
    server.routes[PATH] = drip(head, b" " * 99, 0.2, headers_too=headers_too)
    started = time.monotonic()
    try:
        outcome = fire(server.url, "tok", "coinapi", deadline_s=1.5)
    finally:
        server.stop()
    assert time.monotonic() - started < 3  # the whole answer would take 20 s or more
    assert not outcome.ok and outcome.status is None
    assert outcome.error.startswith("Timeout")


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, "<html>a captive portal, or another app at RELAY_URL</html>"),
        (201, envelope(201, {"processed": "n/a"})),
        (201, envelope(201, {"processed": [1]})),
        (201, envelope(201, {"processed": True})),
        (201, "[" * 100_000 + "]" * 100_000),
    ],
    ids=["html", "text", "list", "bool", "deep"],
)
def test_an_answer_that_is_not_relays_is_a_failure_asked_once(httpserver, status, body):
    script = Script(httpserver, [(status, body)] * 2)
    outcome = fire(httpserver.url_for("/"), "tok", "coinapi", sleep=Sleeps())
    assert not outcome.ok and outcome.attempts == 1 and len(script.requests) == 1
    assert outcome.error == f"HTTP {status} is not relay's answer"


def test_a_retry_after_date_without_a_zone_is_utc(httpserver):
    past = {"Retry-After": "Wed, 21 Oct 2015 07:28:00 -0000"}  # long past: no wait
    Script(httpserver, [(503, envelope(503), past), (201, envelope(201, {"processed": 1}))])
    outcome = fire(httpserver.url_for("/"), "tok", "coinapi")
    assert outcome.ok and outcome.attempts == 2


def test_incomplete_answers_that_stored_nothing_back_off(httpserver):
    idle = (200, envelope(200, {"processed": 0, "complete": False}))
    Script(httpserver, [idle] * 6 + [(204, "")])
    sleeps = Sleeps()
    outcome = fire(httpserver.url_for("/"), "tok", "coinapi", sleep=sleeps, rng=FULL_JITTER)
    assert outcome.ok and outcome.attempts == 7
    assert sleeps == [1, 2, 4, 8, 16, 30]  # as after failures: no call at once


def run_cli(*args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in ("RELAY_URL", "RELAY_TOKEN")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "scheduler", *args], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_cli_exit_0_on_success_with_one_json_line(httpserver):
    Script(httpserver, [(201, envelope(201, {"processed": 3, "complete": True}))])
    done = run_cli(
        "fire", "coinapi", "--symbols", "BTC,ETH",
        env_extra={"RELAY_URL": httpserver.url_for("/"), "RELAY_TOKEN": "tok"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    line = json.loads(done.stdout.strip())
    assert line["source"] == "coinapi" and line["status"] == 201
    assert line["processed"] == 3 and line["attempts"] == 1 and line["duration_s"] >= 0


def test_cli_400_is_one_attempt_and_a_failure(httpserver):
    Script(httpserver, [(400, envelope(400, message="Bad Request: Invalid Symbol"))])
    done = run_cli(
        "fire", "coinapi", "--symbols", "???",
        env_extra={"RELAY_URL": httpserver.url_for("/"), "RELAY_TOKEN": "tok"},
    )  # fmt: skip
    assert done.returncode == 1
    line = json.loads(done.stdout.strip())
    assert line["attempts"] == 1 and line["status"] == 400
    assert line["error"] == "Bad Request: Invalid Symbol"


def test_cli_without_settings_says_what_is_missing():
    done = run_cli("fire", "coinapi")
    assert done.returncode != 0
    assert "RELAY_URL and RELAY_TOKEN must be set" in done.stderr


def test_the_default_schedule():
    jobs = {job.source: job.cron for job in load_schedule()}
    assert jobs == {
        "coinapi": "*/10 * * * *",
        "binance": "5 * * * *",
        "cmc": "10 * * * *",
        "ecb": "0 17 * * *",
        "coinbase": "15 * * * *",
    }


def test_clock_keeps_every_job_running_when_one_fails_or_is_slow():
    calls = {"ok": [], "boom": [], "slow": []}
    running = {"slow": 0, "max_slow": 0}
    lock = threading.Lock()

    def action(job, stop):
        calls[job.source].append(time.monotonic())
        if job.source == "boom":
            raise RuntimeError("upstream exploded")
        if job.source == "slow":
            with lock:
                running["slow"] += 1
                running["max_slow"] = max(running["max_slow"], running["slow"])
            time.sleep(2.5)
            with lock:
                running["slow"] -= 1

    every_second = "* * * * * *"
    clock = Clock(
        [Job("ok", every_second), Job("boom", every_second), Job("slow", every_second)], action
    )
    clock.start()
    time.sleep(3.6)
    clock.stop()

    assert len(calls["ok"]) >= 3
    assert len(calls["boom"]) >= 3  # raising did not unschedule it
    assert running["max_slow"] == 1  # the slow job never overlapped itself
    assert 1 <= len(calls["slow"]) <= 2


def test_clock_stop_lets_the_running_call_finish():
    finished = threading.Event()
    started = threading.Event()

    def action(job, stop):
        started.set()
        time.sleep(1.0)
        finished.set()

    clock = Clock([Job("ok", "* * * * * *")], action)
    clock.start()
    assert started.wait(3)
    clock.stop()
    assert finished.is_set()


@pytest.mark.parametrize(
    "cron",
    ["* * *", "61 * * * *", "* * * * * * *", "0 0 * * 8", "0 0 * * 5-2", "0 0 * * mon#1",
     "0 0 * * 5-", "0 0 * * L", "0 0 1,15 * 5", "0 0 1 * mon"],
)  # fmt: skip
def test_bad_cron_is_refused_at_load(tmp_path, cron):
    path = tmp_path / "schedule.toml"
    path.write_text(f'[jobs.coinapi]\ncron = "{cron}"\n')
    with pytest.raises(ValueError):
        load_schedule(path)


@pytest.mark.parametrize(
    ("weekday", "days"),
    [
        ("0", ["Sun"]),
        ("7", ["Sun"]),
        ("1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("*/2", ["Tue", "Thu", "Sat", "Sun"]),
        ("sat,0", ["Sat", "Sun"]),
        ("mon-fri", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("mon-fri/2", ["Mon", "Wed", "Fri"]),
        ("sun-sat", ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
        ("MON-3", ["Mon", "Tue", "Wed"]),
        ("5-7", ["Fri", "Sat", "Sun"]),
        ("5/2", ["Fri", "Sun"]),
        ("*", ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
    ],
)
def test_weekdays_are_crontabs_zero_is_sunday(weekday, days):
    """The firings from Monday 7 to Sunday 13 December 2026, in order (APScheduler alone
    counts 0 as Monday)."""
    job, fires = trigger(f"0 17 * * {weekday}"), []
    at, end = datetime(2026, 12, 7, tzinfo=UTC), datetime(2026, 12, 14, tzinfo=UTC)  # Mon-Mon
    while (at := job.get_next_fire_time(None, at)) < end:
        fires.append(at.strftime("%a"))
        at += timedelta(seconds=1)
    assert fires == days


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[jobs.binance]\nsymbols = "BTCUSDT"\n', "symbols must be a list"),
        ("[jobs.binance]\nsymbols = [1, 2]\n", "symbols must be a list"),
        ('[jobs.cmc]\nenabled = "false"\n', "enabled must be true or false"),
        ("jobs = 5\n", "jobs must be tables"),
        ('[jobs]\nbinance = "*/5 * * * *"\n', "must be a table"),
        ('[jobs.binance]\ncrom = "*/5 * * * *"\n', "unknown key(s) crom"),
    ],
)
def test_a_schedule_of_another_shape_is_refused_saying_what(tmp_path, text, words):
    path = tmp_path / "schedule.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(words)):
        load_schedule(path)


def test_the_schedule_file_changes_adds_and_drops_jobs(tmp_path):
    path = tmp_path / "schedule.toml"
    path.write_text(
        '[jobs.binance]\ncron = "*/15 * * * *"\nsymbols = ["BTCUSDT"]\n'
        '[jobs.binance-eth]\nsource = "binance"\ncron = "30 * * * *"\nsymbols = ["ETHUSDT"]\n'
        "[jobs.cmc]\nenabled = false\n"
    )
    jobs = {(job.source, job.cron, job.symbols) for job in load_schedule(path)}
    assert ("binance", "*/15 * * * *", ("BTCUSDT",)) in jobs
    assert ("binance", "30 * * * *", ("ETHUSDT",)) in jobs
    assert "cmc" not in {source for source, _, _ in jobs}
    assert ("ecb", "0 17 * * *", ()) in jobs


def test_a_job_for_an_unknown_source_is_refused_at_load(tmp_path):
    path = tmp_path / "schedule.toml"
    path.write_text('[jobs.kraken]\ncron = "* * * * *"\n')
    with pytest.raises(ValueError, match="kraken"):
        load_schedule(path)


ISO_Z = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def test_run_fires_every_job_at_start_and_logs_each_next_run(httpserver):
    import re
    import signal

    from relay.sources.registry import BY_NAME

    fired = []
    for name in BY_NAME:
        httpserver.expect_request(
            f"/relay-api/v1/relay-in/{name}", method="POST"
        ).respond_with_handler(
            lambda request, name=name: (
                fired.append(name)
                or Response(
                    envelope(201, {"processed": 1}), status=201, content_type="application/json"
                )
            )
        )
    env = {k: v for k, v in os.environ.items() if k not in ("RELAY_URL", "RELAY_TOKEN")}
    env.update({"RELAY_URL": httpserver.url_for("/"), "RELAY_TOKEN": "tok"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "scheduler", "run"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while len(fired) < len(BY_NAME) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the log lines that follow each firing
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert sorted(fired) == sorted(BY_NAME)  # every job once, at start: nothing ran yet
    for name in BY_NAME:
        assert re.search(rf"scheduled {name} at .*fires now.*next run {ISO_Z}", err), err
        assert re.search(rf"{name}: next run {ISO_Z}", err), err
    outcomes = [json.loads(line) for line in out.splitlines()]
    assert sorted(o["source"] for o in outcomes) == sorted(BY_NAME)
    assert all(o["status"] == 201 for o in outcomes)


def test_clock_fires_at_start_then_on_its_cron():
    calls = []
    clock = Clock([Job("hourly", "0 * * * *")], lambda job, stop: calls.append(job.source),
                  fire_at_start=True)  # fmt: skip
    clock.start()
    try:
        assert eventually(lambda: calls == ["hourly"])
        time.sleep(0.3)
        assert calls == ["hourly"]  # once, then it waits for the top of the hour
        assert clock.next_run(0).minute == 0
    finally:
        clock.stop()


def test_the_start_firings_are_spaced_apart():
    # All at one instant, five relay-ins would ask a small pool for five connections at once.
    fired: list[tuple[str, float]] = []
    jobs = [Job("first", "0 * * * *"), Job("second", "0 * * * *")]
    clock = Clock(jobs, lambda job, stop: fired.append((job.source, time.monotonic())),
                  fire_at_start=True)  # fmt: skip
    clock.start()
    try:
        assert eventually(lambda: len(fired) == 2, timeout=5)
    finally:
        clock.stop()
    assert [name for name, _ in fired] == ["first", "second"]
    assert fired[1][1] - fired[0][1] >= START_SPACING_S * 0.9
