"""A page of 1-minute candles as it is stored: COPY text lines keyed by open time.

An exchange's parser renders its rows once; relay.candles COPYs the lines as they
are and splits new minutes from ones stored before by the keys, with no Python
step per field.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Minutes:
    """Rows as COPY text lines (fields tab-separated, in ``columns`` order, open_time first).

    ``keys`` hold each row's open time: datetimes, or with ``unit`` whole units since
    1970 UTC (Binance's milliseconds), which compare as the times do.
    """

    __slots__ = ("columns", "keys", "lines", "unit")

    def __init__(
        self,
        columns: Sequence[str],
        lines: list[str],
        keys: list,
        unit: timedelta | None = None,
    ):
        self.columns = tuple(columns)
        self.lines, self.keys, self.unit = lines, keys, unit

    @classmethod
    def of(cls, rows: Sequence[NamedTuple]) -> Minutes:
        """Render parsed rows: Decimals print every digit they were parsed from."""
        columns = type(rows[0])._fields if rows else ()
        return cls(columns, ["\t".join(map(str, row)) for row in rows], [row[0] for row in rows])

    def __len__(self) -> int:
        return len(self.lines)

    def key(self, when: datetime) -> Any:
        """``when`` as a key: a key is after it exactly when its minute opens after ``when``."""
        return when if self.unit is None else (when - EPOCH) // self.unit

    def times(self) -> list[datetime]:
        """Every row's open time."""
        if self.unit is None:
            return list(self.keys)
        return [EPOCH + key * self.unit for key in self.keys]

    @property
    def since(self) -> datetime:
        """The oldest open time in the page (the page must not be empty)."""
        oldest = min(self.keys)
        return oldest if self.unit is None else EPOCH + oldest * self.unit

    @property
    def upto(self) -> datetime:
        """The newest open time in the page (the page must not be empty)."""
        newest = max(self.keys)
        return newest if self.unit is None else EPOCH + newest * self.unit

    def unique(self) -> tuple[list, list[str]]:
        """Keys and lines with each minute once (the last one sent, where it first came)."""
        if len(set(self.keys)) == len(self.keys):
            return self.keys, self.lines
        last = {key: at for at, key in enumerate(self.keys)}
        chosen = [last[key] for key in dict.fromkeys(self.keys)]
        return [self.keys[at] for at in chosen], [self.lines[at] for at in chosen]
