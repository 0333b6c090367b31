"""Know, in every worker, when stored data changed: LISTEN/NOTIFY and an answer cache.

Every transaction that writes relayed data sends ``NOTIFY relay_changes,
'<concern>'`` (PostgreSQL delivers it at commit, to every listening
process). Each worker keeps one listening connection in a thread and a
generation number per concern; answers computed under a generation are
served from memory until it moves. Revocations travel the same way and keep
an in-memory set of revoked token ids current. With each generation goes a WAL
position of the primary past the change, so that reads may go to a replica that
has replayed it (relay.reads).

While the listener is not connected and caught up, nothing is cached and
revocations are read from the database on every request, so a lost
connection costs speed, never correctness.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from relay import media
from relay.notify import CHANNEL, REVOKED, wal_position
from relay.sources.registry import CONCERNS

log = logging.getLogger(__name__)


class Changes:
    """The per-worker listener: generations per concern and the revoked-token set.

    What it holds is trusted only while the listener is *fresh*: connected, and its last
    answered heartbeat (``SELECT 1`` every ``heartbeat_s``) was sent at most ``fresh_s``
    ago. PostgreSQL sends a listening session every notification committed before a
    query ahead of that query's answer, so an answered heartbeat sent at T means every
    change and revocation committed before T is in hand. A stalled connection (a frozen
    server, a black-holed route) thus costs trust within ``fresh_s``: revocations are
    read from the database and nothing is cached, until it is heard from again. A
    heartbeat unanswered for ``dead_after_s`` drops the connection, and it reconnects.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        retry_s: float = 1.0,
        heartbeat_s: float = 1.0,
        fresh_s: float = 3.0,
        dead_after_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.conninfo = conninfo
        self.retry_s = retry_s
        self.heartbeat_s = heartbeat_s
        self.fresh_s = fresh_s
        self.dead_after_s = dead_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._generation = dict.fromkeys((*CONCERNS, REVOKED), 0)
        # per concern, a primary WAL position past every change of it heard of; always
        # moved before the generation, so a reader that sees a generation sees its position
        self._wal = dict.fromkeys(self._generation, 0)
        self._revoked: frozenset[str] = frozenset()
        self._connected = False
        self._heard_at = float("-inf")  # when the last answered heartbeat was sent
        self._asked_at: float | None = None  # since when an answer is awaited (None: not)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None

    # -- what readers ask --------------------------------------------------------------

    @property
    def live(self) -> bool:
        """Whether what the listener holds can be trusted: connected, and heard lately."""
        return self._connected and self._clock() - self._heard_at <= self.fresh_s

    @property
    def concerns(self) -> tuple[str, ...]:
        """What answers are cached by: each source's concern (relay.sources.registry)."""
        return tuple(concern for concern in self._generation if concern != REVOKED)

    def generation(self, concern: str) -> int | None:
        """The concern's generation, or None while changes cannot be trusted."""
        if not self.live:
            return None
        return self._generation[concern]

    def wal_position(self, concern: str) -> int | None:
        """A primary WAL position past every change of ``concern`` heard of, or None while
        changes cannot be trusted. A replica that has replayed up to it answers as fresh
        as this worker knows the data to be; read it after ``generation``.
        """
        if not self.live:
            return None
        return self._wal[concern]

    def revoked(self) -> frozenset[str] | None:
        return self._revoked if self.live else None

    def touch(self, concern: str, wal: int = 0) -> None:
        """Move a generation at once (the writing worker need not wait for its own NOTIFY).

        ``wal``: the primary's WAL position after the write committed (notify.wal_position).
        """
        with self._lock:
            self._wal[concern] = max(self._wal[concern], wal)
            self._generation[concern] += 1

    # -- the listener --------------------------------------------------------------------

    def start(self) -> Changes:
        self._thread = threading.Thread(target=self._run, name="relay-changes", daemon=True)
        self._watchdog = threading.Thread(
            target=self._watch, name="relay-changes-watchdog", daemon=True
        )
        self._thread.start()
        self._watchdog.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                conn.cancel_safe(timeout=2)
        for thread in (self._thread, self._watchdog):
            if thread is not None:
                thread.join(5)

    def wait_live(self, timeout: float) -> bool:
        """Wait until the listener is caught up (start-up, tests); say whether it is."""
        deadline = time.monotonic() + timeout
        while not self.live and time.monotonic() < deadline:
            self._stop.wait(0.02)
        return self.live

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn = psycopg.connect(
                    self.conninfo,
                    autocommit=True,
                    connect_timeout=5,
                    application_name="relay-changes",
                    # a silent network loss must end the listener, not freeze the cache
                    keepalives=1,
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                )
            except psycopg.Error:
                self._stop.wait(self.retry_s)
                continue
            try:
                with self._lock:
                    self._conn = conn
                self._listen(conn)
            except psycopg.Error as exc:
                if self._connected:
                    log.warning("change listener lost its connection: %s", type(exc).__name__)
            finally:
                # Forget the connection before closing it: the watchdog must never
                # touch a file descriptor that may already belong to something else.
                with self._lock:
                    self._conn = None
                    self._connected = False
                    self._asked_at = None
                conn.close()
            self._stop.wait(self.retry_s)

    def _listen(self, conn: psycopg.Connection) -> None:
        asked = self._clock()
        with self._awaiting(asked):
            conn.execute(f"LISTEN {CHANNEL}")
            # Anything may have changed while we were not listening.
            self._reload_revoked(conn)
            wal = wal_position(conn)
        with self._lock:
            for concern in self._generation:
                self._wal[concern] = max(self._wal[concern], wal)
                self._generation[concern] += 1
        self._heard(conn, asked)
        self._connected = True
        log.info("listening for data changes")
        while not self._stop.is_set():
            # Take one notification at a time (or none within a heartbeat): handling
            # one may query this connection, which cannot be done while notifies()
            # holds it.
            self._apply(conn, list(conn.notifies(timeout=self.heartbeat_s, stop_after=1)))
            if self._clock() - self._heard_at >= self.heartbeat_s:
                asked = self._clock()
                with self._awaiting(asked):
                    conn.execute("SELECT 1")
                self._heard(conn, asked)

    @contextlib.contextmanager
    def _awaiting(self, since: float) -> Iterator[None]:
        """Mark the listener as waiting for an answer since ``since`` (for the watchdog)."""
        with self._lock:
            nested = self._asked_at is not None
            if not nested:
                self._asked_at = since
        try:
            yield
        finally:
            if not nested:
                with self._lock:
                    self._asked_at = None

    def _heard(self, conn: psycopg.Connection, asked: float) -> None:
        """The answer to what was sent at ``asked`` came: apply what arrived before it."""
        # Notifications that came in while the query ran wait in psycopg's backlog.
        self._apply(conn, list(conn.notifies(timeout=0)))
        self._heard_at = asked

    def _apply(self, conn: psycopg.Connection, notes: list) -> None:
        if any(note.payload == REVOKED for note in notes):
            self._reload_revoked(conn)
        changed = {note.payload for note in notes} & self._generation.keys()
        if not changed:
            return
        # Asked after the notifications arrived, so after their commits: past them.
        with self._awaiting(self._clock()):
            wal = wal_position(conn)
        with self._lock:
            for concern in changed:
                self._wal[concern] = max(self._wal[concern], wal)
                self._generation[concern] += 1

    def _reload_revoked(self, conn: psycopg.Connection) -> None:
        with self._awaiting(self._clock()):
            rows = conn.execute("SELECT jti FROM revoked_token").fetchall()
        self._revoked = frozenset(row[0] for row in rows)

    def _watch(self) -> None:
        """Drop a connection whose query has gone unanswered for ``dead_after_s``.

        A stalled peer that still acknowledges TCP (a frozen server) trips no keepalive;
        shutting the socket down makes the blocked listener fail and reconnect.
        """
        while not self._stop.wait(self.heartbeat_s):
            with self._lock:
                conn, asked = self._conn, self._asked_at
                if conn is None or asked is None or self._clock() - asked <= self.dead_after_s:
                    continue
                log.warning(
                    "change listener: no answer for %.0f s; reconnecting", self.dead_after_s
                )
                self._asked_at = None
                with (
                    contextlib.suppress(OSError, psycopg.Error),
                    socket.socket(fileno=os.dup(conn.fileno())) as s,
                ):
                    s.shutdown(socket.SHUT_RDWR)


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
