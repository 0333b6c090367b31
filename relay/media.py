"""JSON for Falcon: orjson, with Decimal as exact strings and UTC times ending in Z."""

from __future__ import annotations

import functools
import uuid
from decimal import Decimal

import falcon
import falcon.media
import orjson


def _default(value):
    if isinstance(value, Decimal):
        # A string keeps every digit (a JSON number would be read as a float),
        # and positional notation: 0.00000002, never 2E-8.
        return format(value, "f")
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


dumps = functools.partial(orjson.dumps, default=_default, option=orjson.OPT_UTC_Z)


def install(app: falcon.App) -> None:
    handler = falcon.media.JSONHandler(dumps=dumps, loads=orjson.loads)
    app.req_options.media_handlers[falcon.MEDIA_JSON] = handler
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = handler
