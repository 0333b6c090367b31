"""GET /health: is the service able to reach its database?"""

from __future__ import annotations

from relay import db
from relay.errors import DatabaseUnavailable, envelope


class HealthResource:
    auth_scope = None  # load balancers and uptime checks call it without a token

    def __init__(self, pool):
        self._pool = pool

    def on_get(self, req, resp):
        if not db.ping(self._pool):
            raise DatabaseUnavailable(data={"database": "unreachable"})
        resp.media = envelope(200, "OK", {"database": "ok"})
