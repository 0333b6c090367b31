"""Bearer JWT authentication and scopes, through the real app and CLI."""

from __future__ import annotations

import base64
import json
import os
import queue
import subprocess
import sys
import threading
import time

import jwt
import psycopg
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from relay import auth
from relay.errors import Unauthorized
from tests.conftest import OLD_SECRET, SECRET, bearer, eventually
from tests.served import free_port

OUT = "/relay-api/v1/relay-out/records"
IN = "/relay-api/v1/relay-in"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def claims(**overrides) -> dict:
    now = int(time.time())
    base = {
        "sub": "tester",
        "scope": "relay:out",
        "iat": now,
        "exp": now + 600,
        "jti": "jti-" + str(now),
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def signed(payload: dict, key=SECRET, algorithm="HS256") -> dict:
    return {"Authorization": "Bearer " + jwt.encode(payload, key, algorithm=algorithm)}


def assert_401(resp):
    assert resp.status_int == 401
    assert resp.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert resp.json["code"] == 401
    assert resp.json["message"].startswith("Unauthorized")


def test_valid_token_reaches_the_route(app):
    # An unknown symbol is 404: the request got past authentication.
    app.get(OUT, {"symbol": "BTC"}, headers=bearer("relay:out"), status=404)


def test_bare_token_without_bearer_is_accepted(app):
    token = auth.mint_token(SECRET, "legacy", ["relay:out"], 60)
    app.get(OUT, {"symbol": "BTC"}, headers={"Authorization": token}, status=404)


def test_token_signed_with_a_rotated_out_secret_still_verifies(app):
    app.get(OUT, {"symbol": "BTC"}, headers=bearer("relay:out", secret=OLD_SECRET), status=404)


def test_health_needs_no_token(app):
    resp = app.get("/health")
    assert resp.json["code"] == 200
    assert resp.json["data"]["database"] == "ok"


def _tampered() -> dict:
    token = auth.mint_token(SECRET, "x", ["relay:out"], 60)
    head, body, sig = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=="))
    payload["scope"] = "relay:in relay:out"
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    return {"Authorization": f"Bearer {head}.{forged}.{sig}"}


def _alg_none() -> dict:
    head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    body = base64.urlsafe_b64encode(json.dumps(claims()).encode()).decode().rstrip("=")
    return {"Authorization": f"Bearer {head}.{body}."}


def _rs256() -> dict:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return signed(claims(), key=key, algorithm="RS256")


BAD_TOKENS = {
    "missing header": lambda: {},
    "empty header": lambda: {"Authorization": ""},
    "not a jwt": lambda: {"Authorization": "Bearer abc.def"},
    "three words": lambda: {"Authorization": "Bearer a b"},
    "basic auth": lambda: {"Authorization": "Basic dXNlcjpwYXNz"},
    "wrong secret": lambda: signed(claims(), key="another-secret-that-is-long-enough-1234"),
    "tampered payload": _tampered,
    "alg none": _alg_none,
    "HS512 with our secret": lambda: signed(claims(), algorithm="HS512"),
    "RS256": _rs256,
    "expired": lambda: signed(claims(exp=int(time.time()) - 120)),
    "not yet valid": lambda: signed(claims(nbf=int(time.time()) + 120)),
    "issued in the future": lambda: signed(claims(iat=int(time.time()) + 120)),
    "no exp": lambda: signed(claims(exp=None)),
    "no jti": lambda: signed(claims(jti=None)),
    "no scope": lambda: signed(claims(scope=None)),
    "scope not a string": lambda: signed(claims(scope=["relay:out"])),
    "100 KB header": lambda: {"Authorization": "Bearer " + "a" * 100_000},
}


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("case", BAD_TOKENS)
def test_bad_tokens_are_401(app, case):
    resp = app.get(OUT, {"symbol": "BTC"}, headers=BAD_TOKENS[case](), expect_errors=True)
    assert_401(resp)


def test_expiry_allows_30_seconds_of_clock_skew(app):
    now = int(time.time())
    app.get(OUT, {"symbol": "BTC"}, headers=signed(claims(exp=now - 10)), status=404)
    app.get(OUT, {"symbol": "BTC"}, headers=signed(claims(nbf=now + 10)), status=404)
    assert_401(app.get(OUT, {"symbol": "BTC"}, headers=signed(claims(exp=now - 45)), status=401))


def test_missing_scope_is_403(app):
    resp = app.get(OUT, {"symbol": "BTC"}, headers=bearer("relay:in"), status=403)
    assert resp.json["message"] == "Forbidden: token lacks the relay:out scope"
    resp = app.get(IN, {"Symbol": "BTC"}, headers=bearer("relay:out"), status=403)
    assert resp.json["message"] == "Forbidden: token lacks the relay:in scope"


def test_unknown_route_is_404_without_a_token(app):
    resp = app.get("/relay-api/v1/nope", status=404)
    assert resp.json["code"] == 404


def _cli(*args, env_extra=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RELAY_JWT_SECRET")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "relay", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_token_command_prints_a_token_the_app_accepts(app, database_url):
    done = _cli(
        "token",
        "--sub",
        "frontend",
        "--scope",
        "relay:out",
        "--ttl",
        "30d",
        env_extra={"RELAY_JWT_SECRET": f"{SECRET},{OLD_SECRET}", "DATABASE_URL": database_url},
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    payload = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert payload["sub"] == "frontend"
    assert payload["scope"] == "relay:out"
    assert payload["exp"] - payload["iat"] == 30 * 86400
    assert payload["jti"]
    app.get(OUT, {"symbol": "BTC"}, headers={"Authorization": f"Bearer {token}"}, status=404)


def test_token_command_refuses_a_short_secret():
    done = _cli(
        "token", "--sub", "x", "--scope", "relay:out", env_extra={"RELAY_JWT_SECRET": "short"}
    )
    assert done.returncode == 2
    assert "RELAY_JWT_SECRET" in done.stderr
    assert "short" not in done.stdout


def test_revoke_with_an_empty_jti_says_what_it_needs(database_url):
    done = _cli("revoke", "", env_extra={"DATABASE_URL": database_url, "RELAY_JWT_SECRET": SECRET})
    assert done.returncode == 2 and "give a token's jti, or --sub" in done.stderr


def test_revoked_token_is_refused_from_then_on_across_processes(app, database_url):
    token = auth.mint_token(SECRET, "leaked", ["relay:out"], 600)
    headers = {"Authorization": f"Bearer {token}"}
    app.get(OUT, {"symbol": "BTC"}, headers=headers, status=404)
    jti = jwt.decode(token, SECRET, algorithms=["HS256"])["jti"]

    done = _cli("revoke", jti, env_extra={"DATABASE_URL": database_url, "RELAY_JWT_SECRET": SECRET})
    assert done.returncode == 0, done.stderr
    assert f"revoked {jti}" in done.stdout

    resp = app.get(OUT, {"symbol": "BTC"}, headers=headers, status=401)
    assert resp.json["message"] == "Unauthorized: token revoked"
    # Revoking again is harmless and says so.
    again = _cli(
        "revoke", jti, env_extra={"DATABASE_URL": database_url, "RELAY_JWT_SECRET": SECRET}
    )
    assert "already revoked" in again.stdout


def _token(database_url, sub, scope="relay:out", *extra) -> subprocess.CompletedProcess:
    env = {"DATABASE_URL": database_url, "RELAY_JWT_SECRET": SECRET}
    return _cli("token", "--sub", sub, "--scope", scope, *extra, env_extra=env)


def _utc(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def test_token_command_prints_the_jti_and_expiry_and_records_the_token(database_url, conn):
    done = _token(database_url, "frontend", "relay:in relay:out", "--ttl", "12h")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert done.stdout == token + "\n"  # the token alone on stdout: TOKEN=$(relay token ...)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert f"jti {claims['jti']}" in done.stderr
    assert f"expires {_utc(claims['exp'])}" in done.stderr
    assert f"python -m relay revoke {claims['jti']}" in done.stderr
    row = conn.execute(
        "SELECT sub, scope, extract(epoch FROM issued_at)::bigint, "
        "extract(epoch FROM expires_at)::bigint FROM issued_token WHERE jti = %s",
        (claims["jti"],),
    ).fetchone()
    assert row == ("frontend", "relay:in relay:out", claims["iat"], claims["exp"])
    assert token not in str(conn.execute("SELECT * FROM issued_token").fetchall())

    as_json = _token(database_url, "frontend", "relay:out", "--json")
    assert as_json.returncode == 0, as_json.stderr
    described = json.loads(as_json.stdout)
    claims = jwt.decode(described["token"], SECRET, algorithms=["HS256"])
    assert described == {
        "token": described["token"],
        "jti": claims["jti"],
        "sub": "frontend",
        "scope": "relay:out",
        "issued_at": _utc(claims["iat"]),
        "expires_at": _utc(claims["exp"]),
    }


def test_token_command_without_a_database_says_so_and_prints_no_token():
    unused_tcp_port = free_port()  # nothing listens on it
    done = _cli(
        "token",
        "--sub",
        "x",
        "--scope",
        "relay:out",
        env_extra={
            "RELAY_JWT_SECRET": SECRET,
            "DATABASE_URL": f"postgresql://relay@127.0.0.1:{unused_tcp_port}/relay",
        },
    )
    assert done.returncode == 1
    assert done.stdout == ""  # an unrecorded token could not be revoked by --sub
    assert "relay token: the database is unreachable" in done.stderr
    assert "Traceback" not in done.stderr


def _refused(app, token) -> bool:
    resp = app.get(OUT, {"symbol": "BTC"}, headers={"Authorization": f"Bearer {token}"}, status="*")
    if resp.status_int == 404:
        return False
    assert resp.status_int == 401 and resp.json["message"] == "Unauthorized: token revoked"
    return True


def test_revoke_sub_refuses_every_token_of_that_subject_and_no_other(
    make_app, config, database_url, listener
):
    env = {"DATABASE_URL": database_url, "RELAY_JWT_SECRET": SECRET}
    leaked = [_token(database_url, "laptop", scope).stdout.strip() for scope in ("relay:out",) * 2]
    leaked.append(_token(database_url, "laptop", "relay:in relay:out").stdout.strip())
    kept = [_token(database_url, name).stdout.strip() for name in ("laptop2", "desk")]
    apps = [make_app(config), make_app(config, changes=listener)]  # from the database; live set
    for app in apps:
        assert not any(_refused(app, token) for token in leaked + kept)

    done = _cli("revoke", "--sub", "laptop", env_extra=env)
    assert done.returncode == 0, done.stderr
    jtis = sorted(jwt.decode(t, SECRET, algorithms=["HS256"])["jti"] for t in leaked)
    assert done.stdout.strip() == f"revoked 3 token(s) of laptop: {', '.join(jtis)}"
    for app in apps:
        assert eventually(lambda app=app: all(_refused(app, token) for token in leaked))
        assert not any(_refused(app, token) for token in kept)

    # Again: nothing left to revoke, and it says so; an expired token is not counted as live.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO issued_token VALUES ('old', 'laptop', 'relay:out', "
            "now() - interval '2 days', now() - interval '1 day')"
        )
    again = _cli("revoke", "--sub", "laptop", env_extra=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "revoked 0 token(s) of laptop; 3 already revoked; 1 expired"
    # The subject is not barred: a token minted afterwards is accepted.
    fresh = _token(database_url, "laptop").stdout.strip()
    assert not any(_refused(app, fresh) for app in apps)


def test_revocations_of_tokens_long_expired_are_forgotten_and_the_rest_kept(
    make_app, config, database_url, conn
):
    """Every worker holds the revoked list in memory: ``relay prune`` (and each ``relay
    revoke``) forgets a revocation once its token could not be accepted anyway."""
    env = {"DATABASE_URL": database_url, "RELAY_JWT_SECRET": SECRET}
    live = _token(database_url, "laptop").stdout.strip()
    live_jti = jwt.decode(live, SECRET, algorithms=["HS256"])["jti"]
    for jti in (live_jti, "never-recorded"):
        assert _cli("revoke", jti, env_extra=env).returncode == 0
    held = dict(conn.execute("SELECT jti, expires_at IS NOT NULL FROM revoked_token").fetchall())
    assert held == {live_jti: True, "never-recorded": False}  # the expiry, where recorded
    for jti, expired in (("long-gone", "2 days"), ("just-gone", "1 hour")):
        conn.execute(
            "INSERT INTO issued_token VALUES (%s, 'laptop', 'relay:out',"
            " now() - interval '9 days', now() - %s::interval)",
            (jti, expired),
        )
        conn.execute(
            "INSERT INTO revoked_token (jti, expires_at)"
            " SELECT jti, expires_at FROM issued_token WHERE jti = %s",
            (jti,),
        )

    done = _cli("prune", env_extra=env)

    assert done.returncode == 0, done.stderr
    assert "revoked_token: forgot 1 revocation(s)" in done.stdout
    assert "issued_token: forgot 1 record(s)" in done.stdout
    kept = {row[0] for row in conn.execute("SELECT jti FROM revoked_token")}
    assert kept == {live_jti, "just-gone", "never-recorded"}  # no expiry known: kept
    recorded = {row[0] for row in conn.execute("SELECT jti FROM issued_token")}
    assert recorded == {live_jti, "just-gone"}
    assert _refused(make_app(config), live)  # the live token stays refused


def test_revoke_sub_of_an_unknown_subject_says_so(database_url, conn):
    _token(database_url, "known")
    env = {"DATABASE_URL": database_url, "RELAY_JWT_SECRET": SECRET}
    done = _cli("revoke", "--sub", "nobody", env_extra=env)
    assert done.returncode == 1
    assert "no token issued to 'nobody' is recorded" in done.stderr
    assert conn.execute("SELECT count(*) FROM revoked_token").fetchone()[0] == 0


def test_revoke_takes_a_jti_or_a_subject_not_both_nor_neither(database_url):
    env = {"DATABASE_URL": database_url, "RELAY_JWT_SECRET": SECRET}
    for args in ((), ("some-jti", "--sub", "someone")):
        done = _cli("revoke", *args, env_extra=env)
        assert done.returncode == 2
        assert "jti" in done.stderr and "--sub" in done.stderr


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def test_serve_prints_a_token_for_each_scope_and_records_them(database_url, conn):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RELAY_JWT_SECRET")}
    env.update(DATABASE_URL=database_url, RELAY_JWT_SECRET=SECRET, PORT=str(port))
    env.update(WEB_CONCURRENCY="1")
    serve = subprocess.Popen(
        # no clock: it would fire relay-ins at the real upstreams
        [sys.executable, "-m", "relay", "serve", "--no-clock"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in serve.stdout], daemon=True).start()
    printed = {}
    try:
        deadline = time.monotonic() + 60
        while "web page" not in printed and time.monotonic() < deadline:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if "token (7 days):" in line:
                scope, token = line.split(" token (7 days): ")
                printed[scope.strip()] = token.strip()
            elif "web page:" in line:
                printed["web page"] = line
        # Stopped once it answers: by then it forwards SIGTERM to gunicorn (none is left over).
        health = f"http://127.0.0.1:{port}/health"
        assert eventually(lambda: _answers(health), timeout=max(1, deadline - time.monotonic()))
    finally:
        serve.terminate()
        assert serve.wait(30) is not None
    printed.pop("web page")
    assert list(printed) == list(auth.SCOPES)  # three: relay:in, relay:out, relay:metrics
    recorded = dict(conn.execute("SELECT jti, scope FROM issued_token WHERE sub = 'dev'"))
    assert recorded == {
        jwt.decode(token, SECRET, algorithms=["HS256"])["jti"]: scope
        for scope, token in printed.items()
    }


def test_mint_rejects_unknown_scopes_and_bad_ttls():
    with pytest.raises(ValueError):
        auth.mint_token(SECRET, "x", ["admin"], 60)
    for bad in ("", "0d", "-5", "3w", "1.5h", "3651d", "99999999999999d"):
        with pytest.raises(ValueError):
            auth.parse_ttl(bad)
    assert auth.parse_ttl("90") == 90
    assert auth.parse_ttl("15m") == 900
    assert auth.parse_ttl("3650d") == 3650 * 86400


def test_a_remembered_token_still_expires_and_is_not_yet_valid_before_its_time():
    # The first decode is PyJWT's, against the real clock; later checks use ours.
    start = time.time()
    clock = {"now": start}
    verifier = auth.TokenVerifier([SECRET], clock=lambda: clock["now"])
    token = auth.mint_token(SECRET, "x", ["relay:out"], 600, now=lambda: start)
    assert verifier.verify(token).sub == "x"  # decoded once, remembered
    clock["now"] = start + 600 + 29  # within the 30 s leeway
    assert verifier.verify(token).sub == "x"
    clock["now"] = start + 600 + 31
    with pytest.raises(Unauthorized, match="expired"):
        verifier.verify(token)

    early = jwt.encode(
        claims(iat=int(start), nbf=int(start) + 20, exp=int(start) + 900), SECRET, algorithm="HS256"
    )
    clock["now"] = start
    assert verifier.verify(early).sub == "tester"  # 20 s early is within the leeway
    clock["now"] = start - 40  # our clock steps back: 60 s before nbf
    with pytest.raises(Unauthorized, match="not yet valid"):
        verifier.verify(early)


def test_an_issued_token_is_not_in_its_repr():
    # A log line or a traceback that shows the object must not show the credential.
    issued = auth.issue(SECRET, "frontend", ["relay:out"], 60)
    assert issued.token not in repr(issued) and issued.jti in repr(issued)
