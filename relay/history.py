"""Import daily OHLCV history from CSV files (the widely shared daily crypto price layout).

Columns, matched case-insensitively and in any order: name, symbol, date, high,
low, open, close, volume, marketcap (a leading SNo column is ignored). Dates
may carry a time (``2013-04-29 23:59:59``); the day is what counts.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import psycopg

from relay.sources.cmc import store as coin_store
from relay.sources.numbers import exact_number, plain_text

REQUIRED = ("name", "symbol", "date", "close")
NUMBERS = ("open", "high", "low", "close", "volume", "marketcap")
BATCH = 50_000


_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of a stray byte


class HistoryError(ValueError):
    """A file is not daily history; the message names the file and line."""


def csv_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".csv")
        if not files:
            raise HistoryError(f"{path}: no .csv files")
        return files
    if not path.exists():
        raise HistoryError(f"{path}: no such file")
    return [path]


def read_rows(path: Path, today: date | None = None) -> Iterator[tuple]:
    """Yield (name, symbol, day, open, high, low, close, volume, market_cap) per line.

    A day after ``today`` (default: today in UTC) is refused: the dashboard's latest day
    would be one no snapshot could ever follow.
    """
    today = today or datetime.now(UTC).date()
    # Bytes that are not UTF-8 are kept as lone surrogates, so the line holding them is named.
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip().lower() for h in next(reader, [])]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise HistoryError(f"{path.name}: missing column(s) {', '.join(missing)}")
            index = {name: header.index(name) for name in header}
            for row in reader:
                if _NOT_UTF8.search(",".join(row)):
                    raise ValueError("not UTF-8 text")
                if row and any(cell.strip() for cell in row):
                    yield _row(row, index, today)
        except (IndexError, ValueError, csv.Error) as exc:
            if isinstance(exc, HistoryError):
                raise
            raise HistoryError(f"{path.name} line {reader.line_num}: {exc}") from None


def _row(row: list[str], index: dict[str, int], today: date) -> tuple:
    cells = {name: row[i].strip() for name, i in index.items()}
    numbers = {n: _number(cells.get(n, "")) for n in NUMBERS}
    if numbers["close"] is None:
        raise ValueError("close is empty")
    day = date.fromisoformat(cells["date"][:10])
    if day > today:
        raise ValueError(f"date {day} is after today ({today}, UTC)")
    return (
        plain_text(cells["name"], "name", 1000),
        plain_text(cells["symbol"], "symbol", 1000),
        day,
        numbers["open"],
        numbers["high"],
        numbers["low"],
        numbers["close"],
        numbers["volume"],
        numbers["marketcap"],
    )


def _number(text: str) -> Decimal | None:
    return None if text == "" else exact_number(text, repr(text))


def import_history(conninfo: str, path: Path) -> tuple[int, int]:
    """Import every file under ``path`` in one transaction; return (rows read, days new)."""
    read = new = 0
    with psycopg.connect(conninfo) as conn:
        for file in csv_files(path):
            batch: list[tuple] = []
            for row in read_rows(file):
                batch.append(row)
                if len(batch) >= BATCH:
                    new += coin_store.store_history(conn, batch)
                    read += len(batch)
                    batch = []
            if batch:
                new += coin_store.store_history(conn, batch)
                read += len(batch)
    return read, new
