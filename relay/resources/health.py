"""Public routes: GET /health and GET /openapi.json."""

from __future__ import annotations

from datetime import timedelta

import falcon

from relay import db, media, openapi
from relay.errors import DatabaseUnavailable, envelope
from relay.reads import Reads
from relay.runs import Ledger


class HealthResource:
    auth_scope = None  # load balancers and uptime checks call it without a token

    def __init__(
        self, pool, ledger: Ledger, overdue_after: dict[str, timedelta], reads: Reads | None = None
    ):
        self._pool = pool
        self._ledger = ledger
        self._overdue_after = overdue_after
        self._reads = reads

    def on_get(self, req, resp):
        """200 while the database answers, with each source's last successful relay-in.

        With a read replica, also its state: one that is unavailable does not make this a
        503, as relay-out reads the primary meanwhile.
        """
        if not db.ping(self._pool):
            raise DatabaseUnavailable(data={"database": "unreachable"})
        data = {"database": "ok", "sources": self._ledger.freshness(self._overdue_after)}
        replica = self._reads.health() if self._reads is not None else None
        if replica is not None:
            data["replica"] = replica
        resp.media = envelope(200, "OK", data)


class OpenAPIResource:
    """GET /openapi.json: the contract, public so tools and the docs page can read it."""

    auth_scope = None

    def __init__(self):
        self._body = media.dumps(openapi.document())

    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self._body
