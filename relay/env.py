"""Read one environment variable each: a malformed value is a ConfigError naming it.

Every setting, shared or a source's own, is read with these.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it."""


def required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is required but not set")
    return value


def url(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must be an http(s) URL")
    return value.rstrip("/")


def names(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "on", "yes"):
        return True
    if raw in ("0", "false", "off", "no"):
        return False
    raise ConfigError(f"{name} must be on or off, got {raw!r}")


def whole(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


_DURATION = re.compile(r"^([0-9]{1,6})([hdw])$")
_UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400}
MAX_DURATION = timedelta(days=36525)


def duration(env: Mapping[str, str], name: str, low: timedelta) -> timedelta | None:
    """A duration written ``<n>h``, ``<n>d`` or ``<n>w`` (hours, days, weeks), at least
    ``low``; unset or empty: None."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    match = _DURATION.match(raw)
    if not match:
        raise ConfigError(f"{name} must be a duration such as 36h, 90d or 52w, got {raw[:40]!r}")
    value = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if not low <= value <= MAX_DURATION:
        raise ConfigError(f"{name} must be between {low} and 100 years, got {raw!r}")
    return value
