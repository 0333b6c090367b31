"""A page of 1-minute candles as it is stored: COPY text lines keyed by open time.

An exchange's parser renders its rows once; relay.candles COPYs the lines as they
are and splits new minutes from ones stored before by the keys, with no Python
step per field.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Minutes:
    """Rows as COPY text lines (fields tab-separated, in ``columns`` order, open_time first).

    ``keys`` hold each row's open time: datetimes, or with ``unit`` whole units since
    1970 UTC (Binance's milliseconds), which compare as the times do. A parser that
    has the fields' text at hand may pass some columns as ``values`` (name -> texts in
    row order), so work on them (relay.rollups.fold) needs not split the lines again.
    """

    __slots__ = ("_newest", "_oldest", "columns", "folded", "keys", "lines", "unit", "values")

    def __init__(
        self,
        columns: Sequence[str],
        lines: list[str],
        keys: list,
        unit: timedelta | None = None,
        values: dict[str, list[str]] | None = None,
    ):
        self.columns = tuple(columns)
        self.lines, self.keys, self.unit, self.values = lines, keys, unit, values
        self._oldest, self._newest = (min(keys), max(keys)) if keys else (None, None)
        self.folded: Any = None  # the page's hours and days (relay.rollups.fold), once made

    @classmethod
    def chain(cls, pages: Sequence[Minutes]) -> Minutes | None:
        """Pages in time order as one page, when they can be: the same columns and key unit,
        each page's minutes before the next one's. None otherwise."""
        first = pages[0]
        if not all(page and page.columns == first.columns and page.unit == first.unit
                   for page in pages):  # fmt: skip
            return None
        if any(before.upto >= after.since for before, after in itertools.pairwise(pages)):
            return None
        return cls(
            first.columns,
            [line for page in pages for line in page.lines],
            [key for page in pages for key in page.keys],
            first.unit,
        )

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

    def time(self, key: Any) -> datetime:
        """The open time a key stands for."""
        return key if self.unit is None else EPOCH + key * self.unit

    def times(self) -> list[datetime]:
        """Every row's open time."""
        if self.unit is None:
            return list(self.keys)
        return [EPOCH + key * self.unit for key in self.keys]

    @property
    def since(self) -> datetime:
        """The oldest open time in the page (the page must not be empty)."""
        return self.time(self._oldest)

    @property
    def upto(self) -> datetime:
        """The newest open time in the page (the page must not be empty)."""
        return self.time(self._newest)

    def _chosen(self) -> list[int] | None:
        """Where each minute's row is, once (the last one sent, where it first came); None
        when no minute came twice."""
        if len(set(self.keys)) == len(self.keys):
            return None
        last = {key: at for at, key in enumerate(self.keys)}
        return [last[key] for key in dict.fromkeys(self.keys)]

    def unique(self) -> tuple[list, list[str]]:
        """Keys and lines with each minute once (the last one sent, where it first came)."""
        chosen = self._chosen()
        if chosen is None:
            return self.keys, self.lines
        return [self.keys[at] for at in chosen], [self.lines[at] for at in chosen]

    def fields(self, names: Sequence[str]) -> tuple[list, list[list[str]]]:
        """Keys and the named columns' texts, each minute once (as unique())."""
        if self.values is not None and all(name in self.values for name in names):
            columns = [self.values[name] for name in names]
        else:
            split = [line.split("\t") for line in self.lines]
            columns = [[row[self.columns.index(name)] for row in split] for name in names]
        chosen = self._chosen()
        if chosen is None:
            return self.keys, columns
        keys = [self.keys[at] for at in chosen]
        return keys, [[column[at] for at in chosen] for column in columns]
