"""Every error relay answers with, and the one place that renders them.

Each error carries its HTTP status and a default message; the handlers
below turn it, and any HTTP error Falcon raises itself (404, 405...), into
our envelope ``{"code", "message", "data"}``. Anything else is a bug: a 500
with a request id, logged once with its traceback.
"""

from __future__ import annotations

import logging

import falcon

log = logging.getLogger(__name__)


class RelayError(Exception):
    """Base of every error that maps to an HTTP answer."""

    status = 500
    message = "Internal Server Error"

    def __init__(
        self, message: str | None = None, *, data: dict | None = None, headers: dict | None = None
    ):
        self.message = message or self.message
        self.data = data or {}
        self.headers = headers or {}
        super().__init__(self.message)


class BadRequest(RelayError):
    status = 400
    message = "Bad Request"


class Unauthorized(RelayError):
    status = 401
    message = "Unauthorized: invalid or missing token"

    def __init__(self, message: str | None = None, **kwargs):
        kwargs.setdefault("headers", {})
        kwargs["headers"].setdefault("WWW-Authenticate", 'Bearer error="invalid_token"')
        super().__init__(message, **kwargs)


class Forbidden(RelayError):
    status = 403
    message = "Forbidden: token lacks the required scope"


class NotFound(RelayError):
    status = 404
    message = "Not Found"


class Conflict(RelayError):
    status = 409
    message = "Conflict"


class LengthRequired(RelayError):
    status = 411
    message = "Length Required: send the body with a Content-Length"


class PayloadTooLarge(RelayError):
    status = 413
    message = "Content Too Large"


class URITooLong(RelayError):
    status = 414
    message = "URI Too Long"


class Unprocessable(RelayError):
    status = 422
    message = "Unprocessable Entity"


class UpstreamError(RelayError):
    """An upstream answered badly, refused, or sent something we can't parse."""

    status = 502
    message = "Bad Gateway: upstream failed"


class UpstreamTimeout(UpstreamError):
    status = 504
    message = "Gateway Timeout: upstream did not answer in time"


class DatabaseUnavailable(RelayError):
    status = 503
    message = "Service Unavailable: database unreachable"


def envelope(code: int, message: str, data: dict | None = None) -> dict:
    """Build the response body every relay answer uses."""
    return {"code": code, "message": message, "data": data if data is not None else {}}


def _request_id(req: falcon.Request) -> str | None:
    return getattr(req.context, "request_id", None)


def handle_relay_error(req, resp, ex: RelayError, params):
    resp.status = ex.status
    resp.media = envelope(ex.status, ex.message, ex.data)
    for name, value in ex.headers.items():
        resp.set_header(name, value)


def serialize_http_error(req, resp, ex: falcon.HTTPError):
    """Render Falcon's own errors (unknown route, wrong method...) as our envelope."""
    message = ex.title if not ex.description else f"{ex.title}: {ex.description}"
    resp.content_type = falcon.MEDIA_JSON
    resp.media = envelope(ex.status_code, message)


def handle_unexpected(req, resp, ex: Exception, params):
    request_id = _request_id(req)
    log.exception("unhandled error", extra={"request_id": request_id})
    resp.status = 500
    resp.media = envelope(500, "Internal Server Error", {"request_id": request_id})


def install(app: falcon.App) -> None:
    """Register the handlers; the most specific class wins in Falcon 4."""
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(RelayError, handle_relay_error)
    app.set_error_serializer(serialize_http_error)
