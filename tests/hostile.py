"""A hostile upstream on loopback, and a meter of this process's memory.

``HostileServer`` answers each path with a handler that writes raw bytes,
so a test can send what a broken or malicious server would: bodies far
larger than they say, gzip bombs, bytes dripped one at a time, redirects to
other hosts. It records every request it saw (path and headers).

``Memory`` reads this process's resident size from ``/proc/self/status``:
the peak (VmHWM) is reset before a case through ``/proc/self/clear_refs``,
so each case measures its own worst moment, not an estimate.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.server
import io
import re
import struct
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

MIB = 1024 * 1024


class HostileServer:
    def __init__(self):
        self.routes: dict[str, Callable[[http.server.BaseHTTPRequestHandler], None]] = {}
        self.requests: list[tuple[str, dict]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                path = self.path.split("?")[0]
                server.requests.append((self.path, dict(self.headers)))
                route = server.routes.get(path)
                try:
                    if route is None:
                        send(self, 404, b'{"error": "no such route"}')
                    else:
                        route(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the relay hung up on us, as it should

            def do_POST(self):
                length = self.headers.get("Content-Length", "0")
                self.rfile.read(int(length) if length.isdigit() else 0)
                self.do_GET()

            def log_message(self, *args):
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a relay hanging up mid-answer is the point of most cases here


def send(handler, status: int, body: bytes, content_type="application/json", headers=None):
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def huge(total: int, declared: bool) -> Callable:
    """``total`` bytes of a JSON array that never ends, with or without a Content-Length."""

    def handle(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if declared:
            handler.send_header("Content-Length", str(total))
        else:
            handler.send_header("Connection", "close")  # the body ends when the socket does
        handler.end_headers()
        chunk = b"[" + b"1," * (MIB // 2 - 1)
        sent = 0
        while sent < total:
            handler.wfile.write(chunk)
            sent += len(chunk)

    return handle


@functools.cache
def gzip_bomb(decoded: int = 1024 * MIB) -> bytes:
    """About 1 MiB of gzip that decodes to ``decoded`` zero bytes (members of 1 MiB each)."""
    member = gzip.compress(b"\0" * MIB, compresslevel=9)
    return member * (decoded // MIB)


def gzipped(body: bytes, content_type="application/json", location: str | None = None) -> Callable:
    """``body`` sent as gzip: a 200, or with ``location`` a 302 redirecting there."""

    def handle(handler):
        headers = {"Content-Encoding": "gzip"}
        if location is not None:
            headers["Location"] = location
        send(handler, 200 if location is None else 302, body, content_type, headers)

    return handle


def drip(head: bytes, body: bytes, every_s: float, *, headers_too: bool = False) -> Callable:
    """Send ``body`` one byte every ``every_s`` seconds (the head too, when asked)."""

    def handle(handler):
        raw = handler.wfile
        message = head + body
        start = 0 if headers_too else len(head)
        raw.write(message[:start])
        raw.flush()
        for i in range(start, len(message)):
            raw.write(message[i : i + 1])
            raw.flush()
            time.sleep(every_s)

    return handle


def redirect(location: str) -> Callable:
    def handle(handler):
        send(handler, 302, b"", headers={"Location": location})

    return handle


@functools.cache
def bzip2_zip(csv_bytes: int, declared: int = 100) -> bytes:
    """A zip of a few hundred bytes whose CSV is bzip2 of ``csv_bytes`` bytes, declared
    (in its local and central headers) as ``declared`` bytes."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_BZIP2) as archive,
        archive.open("eurofxref-hist.csv", "w") as member,
    ):
        member.write(b"Date,USD,\n")
        for _ in range(csv_bytes // MIB):
            member.write(b"0" * MIB)
    data = bytearray(buffer.getvalue())
    struct.pack_into("<I", data, data.find(b"PK\x03\x04") + 22, declared)  # uncompressed size
    struct.pack_into("<I", data, data.find(b"PK\x01\x02") + 24, declared)
    return bytes(data)


@functools.cache
def wide_csv_zip(csv_bytes: int) -> bytes:
    """A small, legal zip whose CSV is one line of ``csv_bytes`` of one-character cells."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("eurofxref-hist.csv", "w", force_zip64=True) as member,
    ):
        member.write(b"Date,")
        cells = b"A," * (MIB // 2)
        for _ in range(csv_bytes // len(cells)):
            member.write(cells)
        member.write(b"\n")
    return buffer.getvalue()


class Memory:
    """This process's resident memory, from /proc (KiB figures turned into MiB)."""

    STATUS = Path("/proc/self/status")

    def reset(self) -> float:
        """Start a fresh peak; return the resident size now (the idle figure)."""
        Path("/proc/self/clear_refs").write_text("5")
        return self.rss()

    def rss(self) -> float:
        return self._field("VmRSS")

    def peak(self) -> float:
        return self._field("VmHWM")

    def _field(self, name: str) -> float:
        match = re.search(rf"^{name}:\s+(\d+) kB", self.STATUS.read_text(), re.MULTILINE)
        assert match, f"{name} not in {self.STATUS}"
        return int(match.group(1)) / 1024


@contextlib.contextmanager
def bounded_memory(case: str, bound_mib: float):
    """Fail when the peak resident size grows more than ``bound_mib`` over idle in the block."""
    meter = Memory()
    idle = meter.reset()
    yield
    grew = meter.peak() - idle
    print(f"{case}: idle {idle:.0f} MiB, peak +{grew:.1f} MiB")
    assert grew <= bound_mib, f"{case}: peak RSS grew {grew:.0f} MiB over idle {idle:.0f} MiB"
