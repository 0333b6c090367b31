"""Know, in every worker, when stored data changed: LISTEN/NOTIFY and an answer cache.

Every transaction that writes relayed data sends ``NOTIFY relay_changes,
'<concern>'`` (PostgreSQL delivers it at commit, to every listening
process). Each worker keeps one listening connection in a thread and a
generation number per concern; answers computed under a generation are
served from memory until it moves. Revocations travel the same way and keep
an in-memory set of revoked token ids current.

While the listener is not connected and caught up, nothing is cached and
revocations are read from the database on every request, so a lost
connection costs speed, never correctness.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from relay import media

log = logging.getLogger(__name__)

CHANNEL = "relay_changes"
NOTIFY = "SELECT pg_notify('relay_changes', %(concern)s)"
REVOKED = "revoked"
CONCERNS = ("trades", "candles", "rates", "coins")


def announce(conn: psycopg.Connection, concern: str) -> None:
    """Tell every worker, at commit, that ``concern`` changed (call inside the write)."""
    conn.execute(NOTIFY, {"concern": concern})


class Changes:
    """The per-worker listener: generations per concern and the revoked-token set."""

    def __init__(self, conninfo: str, *, retry_s: float = 1.0):
        self.conninfo = conninfo
        self.retry_s = retry_s
        self._lock = threading.Lock()
        self._generation = dict.fromkeys((*CONCERNS, REVOKED), 0)
        self._revoked: frozenset[str] = frozenset()
        self._live = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None

    # -- what readers ask --------------------------------------------------------------

    @property
    def live(self) -> bool:
        return self._live

    def generation(self, concern: str) -> int | None:
        """The concern's generation, or None while changes cannot be trusted."""
        if not self._live:
            return None
        return self._generation[concern]

    def revoked(self) -> frozenset[str] | None:
        return self._revoked if self._live else None

    def touch(self, concern: str) -> None:
        """Move a generation at once (the writing worker need not wait for its own NOTIFY)."""
        with self._lock:
            self._generation[concern] += 1

    # -- the listener --------------------------------------------------------------------

    def start(self) -> Changes:
        self._thread = threading.Thread(target=self._run, name="relay-changes", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.cancel_safe()
        if self._thread is not None:
            self._thread.join(5)

    def wait_live(self, timeout: float) -> bool:
        """Wait until the listener is caught up (start-up, tests); say whether it is."""
        deadline = time.monotonic() + timeout
        while not self._live and time.monotonic() < deadline:
            self._stop.wait(0.02)
        return self._live

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self.conninfo,
                    autocommit=True,
                    connect_timeout=5,
                    application_name="relay-changes",
                    # a silent network loss must end the listener, not freeze the cache
                    keepalives=1,
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                ) as conn:
                    self._conn = conn
                    conn.execute(f"LISTEN {CHANNEL}")
                    # Anything may have changed while we were not listening.
                    self._reload_revoked(conn)
                    with self._lock:
                        for concern in self._generation:
                            self._generation[concern] += 1
                    self._live = True
                    log.info("listening for data changes")
                    while not self._stop.is_set():
                        # Take one notification at a time (or none within a second, to
                        # look at _stop): handling one may query this connection, which
                        # cannot be done while notifies() holds it.
                        for note in list(conn.notifies(timeout=1.0, stop_after=1)):
                            self._handle(conn, note.payload)
            except psycopg.Error as exc:
                if self._live:
                    log.warning("change listener lost its connection: %s", type(exc).__name__)
            finally:
                self._live = False
                self._conn = None
            self._stop.wait(self.retry_s)

    def _handle(self, conn: psycopg.Connection, concern: str) -> None:
        if concern == REVOKED:
            self._reload_revoked(conn)
        with self._lock:
            if concern in self._generation:
                self._generation[concern] += 1

    def _reload_revoked(self, conn: psycopg.Connection) -> None:
        rows = conn.execute("SELECT jti FROM revoked_token").fetchall()
        self._revoked = frozenset(row[0] for row in rows)


class AnswerCache:
    """Answers by (concern, key), valid while the concern's generation holds.

    Keys are what the request means (parsed parameters), never its raw text.
    Memory is bounded in bytes: each entry is charged its size (bytes as they
    are, anything else as its JSON) plus its key's, the least recently used go
    first, and an answer larger than 1/LARGEST_SHARE of the budget is served
    but not kept.
    """

    LARGEST_SHARE = 8

    def __init__(self, changes: Changes | None, max_bytes: int = 32 << 20, max_entries: int = 2048):
        self.changes = changes
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.bytes = 0  # the sizes of the entries held, as charged
        self._entries: collections.OrderedDict[tuple, tuple[int, Any, int]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, concern: str, key: tuple, compute: Callable[[], Any]) -> Any:
        generation = self.changes.generation(concern) if self.changes else None
        if generation is None:
            return compute()
        with self._lock:
            hit = self._entries.get((concern, key))
            if hit is not None and hit[0] == generation:
                self._entries.move_to_end((concern, key))
                return hit[1]
        value = compute()
        # Keep it only if nothing changed while it was computed.
        if self.changes.generation(concern) == generation:
            self._keep((concern, key), generation, value)
        return value

    def _keep(self, key: tuple, generation: int, value: Any) -> None:
        size = len(repr(key)) + (
            len(value) if isinstance(value, bytes) else len(media.dumps(value))
        )
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old[2]
            if size > self.max_bytes // self.LARGEST_SHARE:
                return
            self._entries[key] = (generation, value, size)
            self.bytes += size
            while self.bytes > self.max_bytes or len(self._entries) > self.max_entries:
                _, (_, _, freed) = self._entries.popitem(last=False)
                self.bytes -= freed
