"""Cross-cutting request handling: request ids and safe default headers."""

from __future__ import annotations

import io
import random
import re
import uuid

from relay.errors import LengthRequired, PayloadTooLarge, URITooLong

# A client's id is echoed only when it is short and plain, never arbitrary bytes.
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def new_id() -> str:
    """A random version-4 UUID, in hex.

    An id names a request in the logs; it guards nothing, so it comes from
    ``random`` (reseeded in every forked worker) rather than a getrandom()
    system call per request, which costs more than the rest of the id.
    """
    return uuid.UUID(int=random.getrandbits(128), version=4).hex


class RequestIdMiddleware:
    """Give every request an id (the client's X-Request-Id when sane) and echo it."""

    def process_request(self, req, resp):
        given = req.get_header("X-Request-Id")
        req.context.request_id = given if given and _CLIENT_ID.match(given) else new_id()

    def process_response(self, req, resp, resource, req_succeeded):
        request_id = getattr(req.context, "request_id", None)
        if request_id:
            resp.set_header("X-Request-Id", request_id)
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Cache-Control", resp.get_header("Cache-Control") or "no-store")


class LimitsMiddleware:
    """Refuse over-long query strings (414) and bodies (413) before any work.

    A body of unknown length (``Transfer-Encoding: chunked``) is read here, up to the
    limit, and handed on as a body of known length: Falcon reads a request without a
    Content-Length as empty, so it would otherwise be ignored.
    """

    def __init__(self, max_query_bytes: int, max_body_bytes: int):
        self.max_query_bytes = max_query_bytes
        self.max_body_bytes = max_body_bytes

    def process_request(self, req, resp):
        if len(req.query_string) > self.max_query_bytes:
            raise URITooLong(f"URI Too Long: the query string exceeds {self.max_query_bytes} bytes")
        length = req.content_length
        if length is None and req.get_header("Transfer-Encoding") is not None:
            length = self._read_whole_body(req)
        if length is not None and length > self.max_body_bytes:
            raise PayloadTooLarge(
                f"Content Too Large: the body exceeds {self.max_body_bytes} bytes"
            )

    def _read_whole_body(self, req) -> int:
        # Only a server that decodes the transfer coding and ends wsgi.input at the end of
        # the body says so (gunicorn does); from any other, reading could hang or misread.
        if not req.env.get("wsgi.input_terminated"):
            raise LengthRequired()
        body = bytearray()
        while len(body) <= self.max_body_bytes:
            chunk = req.stream.read(self.max_body_bytes + 1 - len(body))
            if not chunk:
                break
            body += chunk
        if len(body) <= self.max_body_bytes:
            req.env["wsgi.input"] = req.stream = io.BytesIO(bytes(body))
            req.env["CONTENT_LENGTH"] = str(len(body))
        return len(body)


class PrivateAnswersMiddleware:
    """An answer that needed a token is the caller's own: no shared cache may keep it.

    For every resource that declares a scope, ``public`` in Cache-Control becomes
    ``private`` and ``Vary: Authorization`` is added, whatever the responder set;
    so no route can forget it. Public routes and sinks are left as they are.
    """

    def process_response(self, req, resp, resource, req_succeeded):
        if resource is None or getattr(resource, "auth_scope", "undeclared") is None:
            return
        cache_control = resp.get_header("Cache-Control")
        if cache_control:
            directives = [d.strip() for d in cache_control.split(",") if d.strip()]
            directives = [d for d in directives if d.lower() not in ("public", "private")]
            if not any(d.lower() == "no-store" for d in directives):
                directives.insert(0, "private")
            resp.set_header("Cache-Control", ", ".join(directives))
        vary = [v.strip() for v in (resp.get_header("Vary") or "").split(",") if v.strip()]
        if not any(v.lower() in ("authorization", "*") for v in vary):
            resp.set_header("Vary", ", ".join([*vary, "Authorization"]))
