"""Bearer JWTs: minting, verification, revocation and the auth middleware.

Tokens are HS256 with claims ``sub``, ``scope`` (space-separated), ``iat``,
``exp`` and ``jti``. The algorithm is fixed here, never taken from the token.
``RELAY_JWT_SECRET`` may list several secrets: the first signs, all verify,
so a secret can be rotated without invalidating live tokens at once.
"""

from __future__ import annotations

import dataclasses
import re
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import jwt
from psycopg_pool import ConnectionPool

from relay import db
from relay.changes import Changes
from relay.errors import Forbidden, Unauthorized
from relay.notify import REVOKED, announce

ALGORITHM = "HS256"
LEEWAY_S = 30
REQUIRED_CLAIMS = ["sub", "scope", "iat", "exp", "jti"]
SCOPES = ("relay:in", "relay:out", "relay:metrics")
# Tokens are short; anything far longer is an attack or a mistake, not a token.
MAX_TOKEN_LENGTH = 4096

_TTL = re.compile(r"^(\d+)([smhd]?)$")
_TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who called, and what the token lets them do."""

    sub: str
    scopes: frozenset[str]
    jti: str


MAX_TTL_S = 3650 * 86400  # ten years: longer is a mistake, and no date can hold it for long


def parse_ttl(text: str) -> int:
    """Turn ``30d``, ``12h``, ``15m``, ``90s`` or ``3600`` into seconds (at most 3650d)."""
    match = _TTL.match(text.strip())
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"invalid TTL {text!r}: use a positive number with s, m, h or d")
    seconds = int(match.group(1)) * _TTL_UNITS[match.group(2)]
    if seconds > MAX_TTL_S:
        raise ValueError(f"invalid TTL {text!r}: at most 3650d")
    return seconds


@dataclasses.dataclass(frozen=True)
class Issued:
    """A token as minted, with the claims a person needs to manage it."""

    token: str = dataclasses.field(repr=False)  # never in a log line or a traceback
    jti: str
    sub: str
    scope: str
    issued_at: datetime
    expires_at: datetime

    def describe(self) -> dict[str, str]:
        """The token and its claims as plain strings, times in UTC with Z."""
        return {
            "token": self.token,
            "jti": self.jti,
            "sub": self.sub,
            "scope": self.scope,
            "issued_at": _utc(self.issued_at),
            "expires_at": _utc(self.expires_at),
        }


def _utc(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def issue(
    secret: str,
    sub: str,
    scopes: Iterable[str],
    ttl_s: int,
    *,
    now: Callable[[], float] = time.time,
) -> Issued:
    """Sign a token for ``sub`` with the given scopes, valid for ``ttl_s`` seconds."""
    scopes = list(scopes)
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"scopes must be among {', '.join(SCOPES)}")
    if not sub:
        raise ValueError("sub must not be empty")
    issued = int(now())
    claims = {
        "sub": sub,
        "scope": " ".join(scopes),
        "iat": issued,
        "exp": issued + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    return Issued(
        token=jwt.encode(claims, secret, algorithm=ALGORITHM),
        jti=claims["jti"],
        sub=sub,
        scope=claims["scope"],
        issued_at=datetime.fromtimestamp(claims["iat"], UTC),
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
    )


def mint_token(
    secret: str,
    sub: str,
    scopes: Iterable[str],
    ttl_s: int,
    *,
    now: Callable[[], float] = time.time,
) -> str:
    """Sign a token (unrecorded: the tests' and the bench's own use)."""
    return issue(secret, sub, scopes, ttl_s, now=now).token


def _decode(token: str, secrets: Iterable[str]) -> dict:
    """Check signature, algorithm, claims and times; raise Unauthorized otherwise."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise Unauthorized()
    last_error: Exception | None = None
    for secret in secrets:
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=[ALGORITHM],
                leeway=LEEWAY_S,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.InvalidSignatureError as exc:
            last_error = exc  # maybe signed with another (rotated) secret
            continue
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(_describe(exc)) from exc
        break
    else:
        raise Unauthorized() from last_error
    return claims


def _principal(claims: dict) -> Principal:
    sub, scope, jti = claims["sub"], claims["scope"], claims["jti"]
    if not all(isinstance(v, str) and v for v in (sub, scope, jti)):
        raise Unauthorized("Unauthorized: malformed claims")
    return Principal(sub=sub, scopes=frozenset(scope.split()), jti=jti)


def _describe(exc: Exception) -> str:
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "Unauthorized: token expired"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "Unauthorized: token not yet valid"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"Unauthorized: token lacks the {exc.claim!r} claim"
    return "Unauthorized: invalid token"


def bearer_token(header: str | None) -> str:
    """Extract the token from ``Bearer <jwt>``, or accept the bare token as sent."""
    if not header:
        raise Unauthorized("Unauthorized: missing Authorization header")
    parts = header.strip().split()
    if len(parts) == 2 and parts[0].lower() == "bearer":
        return parts[1]
    if len(parts) == 1:
        return parts[0]
    raise Unauthorized("Unauthorized: malformed Authorization header")


class Revocations:
    """The list of revoked token ids, kept in PostgreSQL so every process sees it."""

    _IS_REVOKED = "SELECT 1 FROM revoked_token WHERE jti = %(jti)s"
    # With its token's expiry when relay recorded the token (else null: kept for good).
    _REVOKE = """
        INSERT INTO revoked_token (jti, expires_at)
        VALUES (%(jti)s, (SELECT expires_at FROM issued_token WHERE jti = %(jti)s))
        ON CONFLICT (jti) DO NOTHING
    """
    # A revocation matters while its token could still be accepted: up to its exp and the
    # leeway. It is forgotten a day after that (another server's clock may lag the
    # database's), and so is the record of the token.
    _FORGET = """
        WITH revocations AS (
            DELETE FROM revoked_token
            WHERE expires_at < now() - make_interval(secs => %(leeway)s) - interval '1 day'
            RETURNING 1
        ), records AS (
            DELETE FROM issued_token
            WHERE expires_at < now() - make_interval(secs => %(leeway)s) - interval '1 day'
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM revocations), (SELECT count(*) FROM records)
    """

    def __init__(self, pool: ConnectionPool, changes: Changes | None = None):
        self._pool = pool
        self._changes = changes

    def is_revoked(self, jti: str) -> bool:
        """From the listener's in-memory set while it is live, else from the database."""
        revoked = self._changes.revoked() if self._changes else None
        if revoked is not None:
            return jti in revoked
        with db.connection(self._pool) as conn:
            return conn.execute(self._IS_REVOKED, {"jti": jti}).fetchone() is not None

    # Every unexpired recorded token of the subject, in one statement; a token is still
    # accepted for LEEWAY_S after its exp, so it counts as live until then.
    _REVOKE_SUBJECT = """
        WITH held AS (
            SELECT jti, expires_at, expires_at > now() - make_interval(secs => %(leeway)s) AS live
            FROM issued_token WHERE sub = %(sub)s
        ), fresh AS (
            INSERT INTO revoked_token (jti, expires_at)
            SELECT jti, expires_at FROM held WHERE live
            ON CONFLICT (jti) DO NOTHING
            RETURNING jti
        )
        SELECT (SELECT count(*) FROM held),
               (SELECT count(*) FROM held WHERE live),
               ARRAY(SELECT jti FROM fresh ORDER BY jti)
    """

    def revoke_subject(self, sub: str) -> SubjectRevoked:
        """Revoke every unexpired recorded token of ``sub``, telling every worker."""
        with db.connection(self._pool) as conn:
            issued, live, fresh = conn.execute(
                self._REVOKE_SUBJECT, {"sub": sub, "leeway": LEEWAY_S}
            ).fetchone()
            if fresh:
                announce(conn, REVOKED)
            return SubjectRevoked(sub=sub, issued=issued, live=live, revoked=tuple(fresh))

    def forget_expired(self) -> tuple[int, int]:
        """Forget the revocations and records of tokens expired over a day ago, so the list
        every worker holds stays as long as the tokens that could still be used; return
        how many revocations and records went."""
        with db.connection(self._pool) as conn:
            revocations, records = conn.execute(self._FORGET, {"leeway": LEEWAY_S}).fetchone()
            if revocations:
                announce(conn, REVOKED)  # every worker loads the shorter list
            return revocations, records

    def revoke(self, jti: str) -> bool:
        """Revoke ``jti``, telling every worker; return False when it was revoked already."""
        with db.connection(self._pool) as conn:
            fresh = conn.execute(self._REVOKE, {"jti": jti}).rowcount == 1
            announce(conn, REVOKED)
            return fresh


class IssuedTokens:
    """The tokens relay minted, by their claims (never the token), kept in PostgreSQL."""

    _RECORD = """
        INSERT INTO issued_token (jti, sub, scope, issued_at, expires_at)
        VALUES (%(jti)s, %(sub)s, %(scope)s, %(issued_at)s, %(expires_at)s)
    """

    def __init__(self, pool: ConnectionPool):
        self._pool = pool

    def record(self, *tokens: Issued) -> None:
        """Record tokens as minted, so that ``revoke_subject`` finds them."""
        with db.connection(self._pool) as conn, conn.cursor() as cur:
            cur.executemany(
                self._RECORD,
                [
                    {
                        "jti": t.jti,
                        "sub": t.sub,
                        "scope": t.scope,
                        "issued_at": t.issued_at,
                        "expires_at": t.expires_at,
                    }
                    for t in tokens
                ],
            )


@dataclasses.dataclass(frozen=True)
class SubjectRevoked:
    """What revoking a subject's tokens did."""

    sub: str
    issued: int  # tokens recorded for the subject, expired ones included
    live: int  # of those, the ones not expired yet (the clock-skew leeway counted)
    revoked: tuple[str, ...]  # the live ones revoked now (the rest were already)


class TokenVerifier:
    """verify_token with memory: a token that verified once is not decoded again.

    The same bytes under the same secrets verify the same way, so only the
    times are checked again on a hit (expiry and not-before, with the same
    leeway); revocation is checked by the caller on every request.
    """

    def __init__(
        self,
        secrets: Iterable[str],
        *,
        clock: Callable[[], float] = time.time,
        max_entries: int = 4096,
    ):
        self._secrets = tuple(secrets)
        self._clock = clock
        self._max_entries = max_entries
        self._known: dict[str, tuple[Principal, float, float]] = {}

    def verify(self, token: str) -> Principal:
        known = self._known.get(token)
        if known is None:
            claims = _decode(token, self._secrets)
            principal = _principal(claims)
            not_before = max(float(claims.get("nbf", claims["iat"])), float(claims["iat"]))
            if len(self._known) >= self._max_entries:
                self._known.clear()
            self._known[token] = (principal, not_before, float(claims["exp"]))
            return principal
        principal, not_before, expires = known
        now = self._clock()
        if now > expires + LEEWAY_S:
            self._known.pop(token, None)
            raise Unauthorized("Unauthorized: token expired")
        if now < not_before - LEEWAY_S:
            raise Unauthorized("Unauthorized: token not yet valid")
        return principal


class AuthMiddleware:
    """Require a valid token with the scope the resource declares.

    Each resource sets ``auth_scope``: a scope string, or None for a public
    route. A resource that forgets to declare it fails loudly (500) rather
    than silently becoming public.
    """

    def __init__(self, verifier: TokenVerifier, revocations: Revocations):
        self._verifier = verifier
        self._revocations = revocations

    def process_resource(self, req, resp, resource, params):
        if resource is None or req.method == "OPTIONS":
            return  # unknown route (404) or CORS preflight
        scope = resource.auth_scope
        if scope is None:
            return
        principal = self._verifier.verify(bearer_token(req.get_header("Authorization")))
        if self._revocations.is_revoked(principal.jti):
            raise Unauthorized("Unauthorized: token revoked")
        if scope not in principal.scopes:
            raise Forbidden(f"Forbidden: token lacks the {scope} scope")
        req.context.principal = principal
