"""Parse and validate query parameters; every failure is a 400 naming the parameter."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time

import falcon

from relay.errors import BadRequest

MAX_PARAM_LENGTH = 200
# Dates and times must fall in [EARLIEST, LATEST): far enough from the ends of
# datetime's range that later arithmetic (a default start 500 days before the
# end, a day after the last) cannot overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
RANGE_TEXT = f"from {EARLIEST.date().isoformat()} up to (not including) {LATEST.date().isoformat()}"
# NUL cannot be stored or compared by PostgreSQL, and no parameter needs control characters.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def text(req: falcon.Request, name: str, *, required: bool = False) -> str | None:
    """Return a stripped, single-valued string parameter, or None when absent."""
    values = req.get_param_as_list(name)
    if not values:
        if required:
            raise BadRequest(f"Bad Request: {name} parameter is required")
        return None
    if len(values) > 1:
        raise BadRequest(f"Bad Request: {name} parameter given more than once")
    value = values[0].strip()
    if len(value) > MAX_PARAM_LENGTH:
        raise BadRequest(f"Bad Request: {name} parameter is too long")
    if _CONTROL.search(value):
        raise BadRequest(f"Bad Request: {name} parameter contains control characters")
    if not value:
        if required:
            raise BadRequest(f"Bad Request: {name} parameter must not be empty")
        return None
    return value


def integer(req: falcon.Request, name: str, *, default: int, low: int, high: int) -> int:
    raw = text(req, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"Bad Request: {name} parameter must be a whole number") from None
    if not low <= value <= high:
        raise BadRequest(f"Bad Request: {name} parameter must be between {low} and {high}")
    return value


def timestamp(req: falcon.Request, name: str) -> datetime | None:
    """Parse an ISO 8601 date or date-time; a time without offset is taken as UTC."""
    raw = text(req, name)
    if raw is None:
        return None
    try:
        if len(raw) == 10:
            when = datetime.combine(date.fromisoformat(raw), time(), UTC)
        else:
            when = datetime.fromisoformat(raw)
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except ValueError:
        raise BadRequest(
            f"Bad Request: {name} parameter must be an ISO 8601 date or date-time"
        ) from None
    except OverflowError:  # 0001-01-01T00:00+01:00 is a moment before year 1
        when = None
    return _in_range(when, name)


def day(req: falcon.Request, name: str) -> date | None:
    """Parse a date (YYYY-MM-DD)."""
    raw = text(req, name)
    if raw is None:
        return None
    try:
        on = date.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"Bad Request: {name} parameter must be a date (YYYY-MM-DD)") from None
    return _in_range(datetime.combine(on, time(), UTC), name).date()


def _in_range(when: datetime | None, name: str) -> datetime:
    if when is None or not EARLIEST <= when < LATEST:
        raise BadRequest(f"Bad Request: {name} parameter must be {RANGE_TEXT}")
    return when


def time_range(req: falcon.Request) -> tuple[datetime | None, datetime | None]:
    """Return the half-open range [start, end) given by ``start`` and ``end``."""
    start, end = timestamp(req, "start"), timestamp(req, "end")
    if start and end and start > end:
        raise BadRequest("Bad Request: start parameter is after end")
    return start, end


def aliased(
    req: falcon.Request, name: str, *aliases: str, required: bool = False
) -> tuple[str, str | None]:
    """A parameter callers may also spell as one of ``aliases``: (the name used, its value)."""
    given = [n for n in (name, *aliases) if req.get_param(n) is not None]
    if len(given) > 1:
        raise BadRequest(
            f"Bad Request: {given[0]} and {given[1]} parameters are the same; give one"
        )
    used = given[0] if given else name
    return used, text(req, used, required=required)


def choice(req: falcon.Request, name: str, options: Iterable[str], default: str) -> str:
    """One of ``options`` (lowercase), whatever case the caller wrote it in."""
    options = list(options)
    raw = text(req, name)
    if raw is None:
        return default
    if raw.lower() not in options:
        raise BadRequest(f"Bad Request: {name} parameter must be one of {', '.join(options)}")
    return raw.lower()
