"""How callers write a symbol: one rule for every source, each with its own pattern."""

from __future__ import annotations

import re

from relay.errors import BadRequest


def resolve(text: str | None, pattern: re.Pattern[str]) -> str:
    """``text`` stripped and upper-cased; BadRequest (the original API's words) unless it fits.

    Missing or empty is ``Check Symbol Parameter``; malformed is ``Invalid Symbol``.
    """
    if text is None or not text.strip():
        raise BadRequest("Bad Request: Check Symbol Parameter")
    candidate = text.strip().upper()
    # ASCII before case mapping counts: "ß".upper() is "SS", the Kelvin sign lowers to "k".
    if not text.isascii() or not pattern.match(candidate):
        raise BadRequest("Bad Request: Invalid Symbol", data={"symbol": text[:100]})
    return candidate


def any_case(pattern: re.Pattern[str]) -> str:
    """``pattern`` (a symbol pattern, written upper-case) as callers may write it: any case.

    For the documents; the server upper-cases ASCII input before matching ``pattern``.
    """
    return pattern.pattern.replace("A-Z", "A-Za-z")
