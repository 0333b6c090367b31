"""Say, inside a write, that stored data changed: every worker's listener hears it at commit."""

from __future__ import annotations

import psycopg

CHANNEL = "relay_changes"
NOTIFY = "SELECT pg_notify('relay_changes', %(concern)s)"
REVOKED = "revoked"


def announce(conn: psycopg.Connection, concern: str) -> None:
    """Tell every worker, at commit, that ``concern`` changed (call inside the write)."""
    conn.execute(NOTIFY, {"concern": concern})
