"""Answers that can be cached: a strong ETag over the exact body, and 304 on a match."""

from __future__ import annotations

import hashlib

import falcon

from relay import media
from relay.errors import envelope


def _tags(header: str | None) -> set[str]:
    if not header:
        return set()
    tags = set()
    for part in header.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]  # If-None-Match compares weakly (RFC 9110 13.1.2)
        tags.add(tag)
    return tags


def send(
    req: falcon.Request,
    resp: falcon.Response,
    body: bytes,
    *,
    content_type: str,
    cache_control: str,
    sha256: bytes | None = None,
) -> None:
    """Send ``body`` with a strong ETag, or 304 when the client already holds it.

    ``sha256``: the body's digest when it is stored with it (a logo), not made again.
    """
    etag = '"' + (sha256 or hashlib.sha256(body).digest()).hex()[:40] + '"'
    resp.set_header("ETag", etag)
    resp.set_header("Cache-Control", cache_control)
    tags = _tags(req.get_header("If-None-Match"))
    if etag in tags or "*" in tags:
        resp.status = 304
        return
    resp.content_type = content_type
    resp.data = body


def send_json(req, resp, envelope: dict, *, cache_control: str) -> None:
    send(
        req,
        resp,
        media.dumps(envelope),
        content_type=falcon.MEDIA_JSON,
        cache_control=cache_control,
    )


def ok_body(data) -> bytes | None:
    """``data`` in the 200 envelope, serialized once: what the answer cache keeps.

    None stays None (the route answers 204 or 404 for it).
    """
    return None if data is None else media.dumps(envelope(200, "OK", data))


def send_body(resp: falcon.Response, body: bytes) -> None:
    """Send a body made by ok_body."""
    resp.content_type = falcon.MEDIA_JSON
    resp.data = body
