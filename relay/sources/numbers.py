"""Values from upstream payloads: exact numbers, storable text, plausible times.

Every check raises TypeError or ValueError naming the field, which each
parser turns into a 502 naming the upstream: nothing an upstream sends may
reach PostgreSQL as a value it refuses (a 500), or as one we cannot use.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from relay.errors import UpstreamError

# Far beyond any price, size or market cap (and well inside NUMERIC's range),
# so "1e999999" is refused as the nonsense it is instead of costing a 500.
MAX_DIGITS = 100
MAX_MAGNITUDE = 60  # |adjusted exponent|: 1e-60 .. 1e60
# Arithmetic on such numbers and an amount a client gives (at most 50 digits): a
# product of two is exact in this many digits, and a quotient (within about 1e+/-160)
# holds every digit down to the smallest unit an answer is rounded to, so rounding it
# to that unit (quantize) cannot fail. Fewer (50) made extreme prices a 500.
ARITHMETIC = decimal.Context(prec=300, rounding=decimal.ROUND_HALF_EVEN)
# Upstream times outside this span are not market data.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
# Errors that parsing hostile values can raise (OverflowError: dates and times).
VALUE_ERRORS = (KeyError, TypeError, ValueError, OverflowError, ArithmeticError)
T = TypeVar("T")

# Plain decimal digits, as market data is sent: every text this matches is a number
# exact_number accepts (at most 60 + 40 digits, |exponent| under 60) and PostgreSQL
# reads as the same numeric (leading zeros included), so such digits go into COPY's
# text format as sent. Anything else (a sign, an exponent, spaces, NaN, 0x1F, 1_000)
# takes the exact_number path. Possessive: a failing match gives up without backtracking.
PLAIN_DIGITS = r"[0-9]{1,60}+(?:\.[0-9]{1,40}+)?+"


def exact_number(value: Any, what: str) -> Decimal:
    """Turn a JSON number (parsed as int or Decimal) or numeric text into a finite Decimal.

    Raises TypeError or ValueError naming ``what``; a bool is not a number.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        raise TypeError(f"{what} is not a number")
    if isinstance(value, str) and len(value) > 2 * MAX_DIGITS:
        raise ValueError(f"{what} is too long to be a number")
    try:
        number = Decimal(value)
    except (InvalidOperation, ValueError):
        raise ValueError(f"{what} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{what} is not finite")
    if number and (
        len(number.as_tuple().digits) > MAX_DIGITS or abs(number.adjusted()) > MAX_MAGNITUDE
    ):
        raise ValueError(f"{what} is out of range")
    return number


def whole_number(value: Any, what: str, high: int = 2**63 - 1) -> int:
    """A non-negative integer (a JSON number or digit text) no larger than ``high``."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"{what} is not a whole number")
    if isinstance(value, str) and len(value) > 20:
        raise ValueError(f"{what} is out of range")
    number = int(value)
    if not 0 <= number <= high:
        raise ValueError(f"{what} is out of range")
    return number


def plain_text(value: Any, what: str, max_length: int = 200) -> str:
    """A non-empty string PostgreSQL can store, at most ``max_length`` long.

    No NUL (PostgreSQL's text refuses it) and no lone surrogate (UTF-8 cannot carry it).
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} is not a string")
    if not value:
        raise ValueError(f"{what} is empty")
    if len(value) > max_length:
        raise ValueError(f"{what} is longer than {max_length} characters")
    if "\x00" in value:
        raise ValueError(f"{what} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: JSON's "\ud800" escape allows it
        raise ValueError(f"{what} is not valid Unicode") from None
    return value


def plausible_time(when: datetime, what: str) -> datetime:
    """``when`` in UTC, refused outside 1970..2200."""
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if not EARLIEST <= when < LATEST:
        raise ValueError(f"{what} {when.date().isoformat()} is outside 1970..2200")
    return when


def each_row(payload: Any, upstream: str, what: str, parse: Callable[[Any], T]) -> list[T]:
    """Parse a list answer row by row: one bad row fails the page, a 502 naming it."""
    if not isinstance(payload, list):
        raise UpstreamError(
            f"Bad Gateway: {upstream} {what}s are a {type(payload).__name__}, not a list"
        )
    parsed = []
    for index, row in enumerate(payload):
        try:
            parsed.append(parse(row))
        except VALUE_ERRORS as exc:
            raise UpstreamError(
                f"Bad Gateway: {upstream} {what} #{index} is malformed: {exc}"
            ) from exc
    return parsed


def one_object(payload: Any, upstream: str, what: str, parse: Callable[[dict], T]) -> T:
    """Parse an object answer: a missing field or a bad value is a 502 naming it."""
    if not isinstance(payload, dict):
        raise UpstreamError(f"Bad Gateway: {upstream} {what} is not an object")
    try:
        return parse(payload)
    except KeyError as exc:
        raise UpstreamError(f"Bad Gateway: {upstream} {what} lacks {exc}") from exc
    except VALUE_ERRORS as exc:
        raise UpstreamError(f"Bad Gateway: {upstream} {what} is malformed: {exc}") from exc
