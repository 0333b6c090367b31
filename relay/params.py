"""Parse and validate query parameters; every failure is a 400 naming the parameter."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import falcon

from relay.errors import BadRequest

MAX_PARAM_LENGTH = 200
# Dates and times must fall in [EARLIEST, LATEST): far enough from the ends of
# datetime's range that later arithmetic (a default start 500 days before the
# end, a day after the last) cannot overflow.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
FUTURE_TEXT = "not after today (UTC): a later one is 400 (in the future)"
RANGE_TEXT = f"from {EARLIEST.date().isoformat()} up to (not including) {LATEST.date().isoformat()}"
# NUL cannot be stored or compared by PostgreSQL, and no parameter needs control characters.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean(value: str, name: str) -> str | None:
    """A value without its surrounding spaces, None when nothing is left; every parameter's
    first check: at most MAX_PARAM_LENGTH characters, no control characters."""
    value = value.strip(" ")
    if len(value) > MAX_PARAM_LENGTH:
        raise BadRequest(f"Bad Request: {name} parameter is too long")
    if _CONTROL.search(value):
        raise BadRequest(f"Bad Request: {name} parameter contains control characters")
    return value or None


def _moment(raw: str, name: str) -> datetime:
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


def _in_range(when: datetime | None, name: str) -> datetime:
    if when is None or not EARLIEST <= when < LATEST:
        raise BadRequest(f"Bad Request: {name} parameter must be {RANGE_TEXT}")
    return when


def ordered(start: datetime | None, end: datetime | None):
    """``(start, end)``, refused when start is after end."""
    if start and end and start > end:
        raise BadRequest("Bad Request: start parameter is after end")
    return start, end


# -- declared parameters -------------------------------------------------------------------
#
# A route declares its query parameters once, as ``query = (Param, ...)`` on its resource.
# The same declaration parses and validates every request (DeclaredParameters below puts
# the values in ``req.context.query``) and writes the route's parameters in the OpenAPI
# document (``Param.documented``), so the two cannot drift apart.


@dataclasses.dataclass(frozen=True)
class Param:
    """One query parameter: its name (and the older spellings it also answers to), its
    JSON schema, and how its text becomes a value (raising BadRequest naming it)."""

    name: str
    schema: dict
    read: Callable[[str, str], Any] = lambda raw, name: raw
    required: bool = False
    default: Any = None
    aliases: tuple[str, ...] = ()
    description: str = ""
    example: Any = None
    missing: str = ""  # the message when a required parameter is absent, if not the usual
    # Whether a parsed value lies after ``today`` (UTC): set on every parameter that takes a
    # date or a time, which is then refused as "in the future" (one rule on every route).
    after: Callable[[Any, date], bool] | None = None

    def __post_init__(self):
        if self.schema.get("type") == "string":  # what clean() lets through, at most
            limit = min(self.schema.get("maxLength", MAX_PARAM_LENGTH), MAX_PARAM_LENGTH)
            object.__setattr__(self, "schema", {**self.schema, "maxLength": limit})

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def parse(self, req: falcon.Request, today: date | None = None) -> Any:
        """The value of this parameter in ``req`` (its default when absent); a date or
        time after ``today`` (when given) is refused, naming the parameter."""
        given = [name for name in self.names if req.get_param(name) is not None]
        if len(given) > 1:
            raise BadRequest(
                f"Bad Request: {given[0]} and {given[1]} parameters are the same; give one"
            )
        used = given[0] if given else self.name
        values = req.get_param_as_list(used) or []
        if len(values) > 1:
            raise BadRequest(f"Bad Request: {used} parameter given more than once")
        if not values and self.required:
            raise BadRequest(self.missing or f"Bad Request: {used} parameter is required")
        if not values:
            return self.default
        value = self.take(values[0], used)
        if today is not None and value is not None and self.after and self.after(value, today):
            raise BadRequest(
                f"Bad Request: {used} parameter is in the future (today is "
                f"{today.isoformat()} in UTC)",
                data={"parameter": used, "today": today.isoformat()},
            )
        return value

    def take(self, raw: str, used: str) -> Any:
        """One value as sent, under the name it was sent as."""
        value = clean(raw, used)
        if value is None:
            if self.required:
                raise BadRequest(self.missing or f"Bad Request: {used} parameter must not be empty")
            return self.default
        return self.read(value, used)

    def documented(self) -> list[dict]:
        """OpenAPI parameter objects: the name, then each alias (deprecated)."""
        first: dict[str, Any] = {
            "name": self.name,
            "in": "query",
            "required": self.required,
            "schema": self.schema,
        }
        description = self.description
        if self.after is not None:
            description = f"{description}; {FUTURE_TEXT}" if description else FUTURE_TEXT
        if description:
            first["description"] = description
        if self.example is not None:
            first["example"] = self.example
        return [first] + [
            {
                "name": alias,
                "in": "query",
                "required": False,
                "deprecated": True,
                "schema": self.schema,
                "description": f"the original name of {self.name}; give one of the two",
            }
            for alias in self.aliases
        ]


# Text as a parameter may hold it: no control characters, not only spaces.
PLAIN = r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$"


def text_param(
    name: str,
    *,
    required: bool = False,
    default: str | None = None,
    pattern: re.Pattern[str] | None = None,
    message: str = "",
    aliases: tuple[str, ...] = (),
    description: str = "",
    example: Any = None,
) -> Param:
    """Free text up to MAX_PARAM_LENGTH, or text that must match ``pattern``."""
    schema: dict[str, Any] = {"type": "string", "maxLength": MAX_PARAM_LENGTH}
    schema["pattern"] = pattern.pattern if pattern else PLAIN
    if default is not None:
        schema["default"] = default

    def read(raw: str, used: str) -> str:
        if pattern is not None and not pattern.match(raw):
            raise BadRequest(f"Bad Request: {used} parameter {message or 'is malformed'}")
        return raw

    return Param(name, schema, read, required, default, aliases, description, example)


_WHOLE = re.compile(r"^-?[0-9]{1,18}$")


def whole_param(name: str, *, default: int, low: int, high: int, description: str = "") -> Param:
    schema = {"type": "integer", "minimum": low, "maximum": high, "default": default}

    def read(raw: str, used: str) -> int:
        if not _WHOLE.match(raw):
            raise BadRequest(f"Bad Request: {used} parameter must be a whole number")
        value = int(raw)
        if not low <= value <= high:
            raise BadRequest(f"Bad Request: {used} parameter must be between {low} and {high}")
        return value

    return Param(name, schema, read, default=default, description=description)


def any_case(text: str) -> str:
    """A regular expression (ECMA 262 as JSON Schema's) matching ``text`` in any case."""
    return "".join(
        f"[{c.upper()}{c.lower()}]" if c.upper() != c.lower() else re.escape(c) for c in text
    )


def choice_param(
    name: str, options: Iterable[str], *, default: str | None, description: str = ""
) -> Param:
    """One of ``options``, in any case (the value is the option as declared)."""
    options = list(options)
    by_folded = {option.lower(): option for option in options}
    # Any case of each option, so the document takes exactly what the server takes.
    pattern = "^(" + "|".join(any_case(option) for option in options) + ")$"
    schema = {"type": "string", "pattern": pattern, "examples": options}
    if default is not None:
        schema["default"] = default

    def read(raw: str, used: str) -> str:
        if not raw.isascii() or raw.lower() not in by_folded:
            raise BadRequest(f"Bad Request: {used} parameter must be one of {', '.join(options)}")
        return by_folded[raw.lower()]

    return Param(name, schema, read, default=default, description=description)


# ISO 8601 dates and date-times, written out so that the document states exactly what is
# taken: real calendar days of 1971..2198 (so no offset can move one out of the range
# above), 24-hour times, an optional offset.
_YEAR = r"(19(7[1-9]|[89][0-9])|2(0[0-9]{2}|1([0-8][0-9]|9[0-8])))"
_LEAP = r"(19(7[26]|8[048]|9[26])|20([02468][048]|[13579][26])|21(0[48]|[2468][048]|[13579][26]))"
_DATE = (
    rf"({_YEAR}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
    rf"|{_YEAR}-(0[13-9]|1[0-2])-(29|30)|{_YEAR}-(0[13578]|1[02])-31|{_LEAP}-02-29)"
)
_HOUR = r"([01][0-9]|2[0-3])"
_TIME = rf"[T ]{_HOUR}:[0-5][0-9](:[0-5][0-9](\.[0-9]{{1,6}})?)?(Z|[+-]{_HOUR}:[0-5][0-9])?"
DATE = re.compile(rf"^{_DATE}$")
MOMENT = re.compile(rf"^{_DATE}({_TIME})?$")
DATE_TEXT = "a date (YYYY-MM-DD) from 1971 to 2198"


def _after_today(value: date, today: date) -> bool:
    return value > today


def _from_after_today(value: datetime, today: date) -> bool:
    """An inclusive start after today: at or after the next midnight (UTC)."""
    return value >= datetime.combine(today + timedelta(days=1), time(), UTC)


def _until_after_today(value: datetime, today: date) -> bool:
    """An exclusive end after today: past the next midnight (UTC), which ends today."""
    return value > datetime.combine(today + timedelta(days=1), time(), UTC)


def moment_param(name: str, *, description: str, exclusive: bool = False) -> Param:
    """An ISO 8601 date or date-time (UTC without an offset) in the supported range, not
    after today: an inclusive one (a start) before the next midnight UTC, an exclusive one
    (an end) at most that midnight."""
    schema = {"type": "string", "pattern": MOMENT.pattern}

    def read(raw: str, used: str) -> datetime:
        if not MOMENT.match(raw):
            raise BadRequest(
                f"Bad Request: {used} parameter must be an ISO 8601 date or date-time "
                "from 1971 to 2198"
            )
        return _moment(raw, used)

    after = _until_after_today if exclusive else _from_after_today
    return Param(name, schema, read, description=description, after=after)


def date_param(
    name: str,
    *,
    required: bool = False,
    latest: bool = False,
    description: str = "",
    example: str | None = None,
) -> Param:
    """A date, YYYY-MM-DD (or ``latest`` where allowed: None), not after today (UTC)."""
    pattern = rf"^(latest|{_DATE})$" if latest else DATE.pattern
    schema = {"type": "string", "pattern": pattern}

    def read(raw: str, used: str) -> date | None:
        if latest and raw == "latest":
            return None
        if not DATE.match(raw):
            raise BadRequest(f"Bad Request: {used} parameter must be {DATE_TEXT}")
        return date.fromisoformat(raw)

    return Param(
        name,
        schema,
        read,
        required=required,
        description=description,
        example=example,
        after=_after_today,
    )


class DeclaredParameters:
    """Parse each request's query by its resource's declaration, into ``req.context.query``.

    A name the route does not declare is a 400 naming it: a typo the client should hear
    of, which would otherwise make a new answer to compute and cache. Resources without a
    declaration (the page, the docs, sinks) are left as they are.
    """

    MAX_NAME_SHOWN = 50

    def __init__(self, now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._now = now  # what "today" is, for the dates and times declared

    def process_resource(self, req, resp, resource, params):
        declared = getattr(resource, "query", None)
        if declared is None or not hasattr(resource, f"on_{req.method.lower()}"):
            return  # undeclared, or a method the route refuses (405)
        allowed = {name for param in declared for name in param.names}
        unknown = sorted(name for name in req.params if name not in allowed)
        if unknown:
            name = unknown[0][: self.MAX_NAME_SHOWN]
            raise BadRequest(f"Bad Request: unknown parameter {name!r}")
        today = self._now().astimezone(UTC).date()
        req.context.query = {param.name: param.parse(req, today) for param in declared}


# start and end of a half-open range of moments, as every ranged route takes them
START_END = (
    moment_param(
        "start", description="ISO 8601 date or date-time, inclusive (UTC if no offset), 1971..2198"
    ),
    moment_param(
        "end", description="ISO 8601 date or date-time, exclusive, 1971..2198", exclusive=True
    ),
)
