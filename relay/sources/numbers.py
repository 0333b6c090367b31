"""Exact numbers from upstream payloads: every digit kept, nothing that is not a number."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any


def exact_number(value: Any, what: str) -> Decimal:
    """Turn a JSON number (parsed as int or Decimal) or numeric text into a finite Decimal.

    Raises TypeError or ValueError naming ``what``; a bool is not a number.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        raise TypeError(f"{what} is not a number")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{what} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{what} is not finite")
    return number
