"""A TCP proxy on 127.0.0.1 in front of PostgreSQL that can stop passing bytes on.

While stalled it keeps every connection open and holds what it has read, as a frozen
server or a black-holed route would look to a client: nothing errors, nothing arrives.
"""

from __future__ import annotations

import contextlib
import socket
import threading

import psycopg


class StallingProxy:
    def __init__(self, conninfo: str):
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
        host, port = str(params.get("host") or "localhost"), int(params.get("port") or 5432)
        if host.startswith("/"):  # a Unix-domain socket directory
            self._target = (socket.AF_UNIX, f"{host}/.s.PGSQL.{port}")
        else:
            self._target = (socket.AF_INET, (host, port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.conninfo = psycopg.conninfo.make_conninfo(conninfo, host="127.0.0.1", port=self.port)
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                # shutdown first: a close() alone leaves a socket that another thread is
                # blocked reading open, and the server waiting on it for ever.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def __enter__(self) -> StallingProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            family, address = self._target
            server = socket.socket(family, socket.SOCK_STREAM)
            try:
                server.connect(address)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while not self._closed.is_set():
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            # Stalled: hold this piece (and read no more) until resumed.
            while not self._flowing.wait(0.1):
                if self._closed.is_set():
                    return
            if not data:
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
                return
            try:
                sink.sendall(data)
            except OSError:
                return
