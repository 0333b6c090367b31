"""European Central Bank euro reference rates: the daily, 90-day and full-history files.

``{ECB_URL}/eurofxref-daily.xml`` and ``eurofxref-hist-90d.xml`` are a
gesmes:Envelope holding ``<Cube time="YYYY-MM-DD">`` elements, each with
``<Cube currency="USD" rate="1.1790"/>`` children. ``eurofxref-hist.zip``
holds one CSV: a ``Date`` column then one column per currency, ``N/A``
where a currency had no rate that day, and a trailing empty column.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import zipfile
from collections.abc import Iterable, Iterator
from datetime import date
from decimal import Decimal
from typing import NamedTuple

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from relay.errors import UpstreamError
from relay.sources.http import UpstreamClient
from relay.sources.numbers import exact_number

NAME = "ECB"
DAILY = "eurofxref-daily.xml"
HIST_90D = "eurofxref-hist-90d.xml"
HIST_ZIP = "eurofxref-hist.zip"
_NS = "{http://www.ecb.int/vocabulary/2002-08-01/eurofxref}"
_CURRENCY = re.compile(r"^[A-Z]{3}$")
FIRST_DAY = date(1999, 1, 4)  # the euro's first reference rates
LAST_DAY = date(2200, 1, 1)
# What each file may be, with room to grow: the daily file is about 2 KB, the
# 90-day file about 100 KB, the zip about 600 KB and the CSV in it about 2 MB
# (some 7,000 days by some 40 currencies). Anything far larger is not it.
MAX_BYTES = {DAILY: 256 * 1024, HIST_90D: 4 * 1024 * 1024, HIST_ZIP: 8 * 1024 * 1024}
MAX_CSV_BYTES = 32 * 1024 * 1024
MAX_CSV_LINE = 8 * 1024  # characters
MAX_CURRENCIES = 100
MAX_DAYS = 20_000  # more than every business day from 1999 to 2070


class Rate(NamedTuple):
    """One published rate: units of ``currency`` per 1 EUR on ``day``."""

    day: date
    currency: str
    rate: Decimal


class ECBSource:
    def __init__(self, client: UpstreamClient, base_url: str):
        self.client = client
        self.base_url = base_url.rstrip("/")

    def fetch(self, name: str, *, deadline: float | None = None) -> Iterable[Rate]:
        """Fetch and parse one of the three files; any defect fails the whole file.

        The zip's rates come as they are read (so a history of any width never
        sits in memory at once): a defect found while storing them fails the
        store, and its transaction stores nothing.
        """
        resp = self.client.get(
            f"{self.base_url}/{name}", deadline=deadline, max_bytes=MAX_BYTES[name]
        )
        if resp.status_code != 200:
            raise UpstreamError(f"Bad Gateway: {NAME} answered HTTP {resp.status_code} for {name}")
        if name.endswith(".zip"):
            return parse_hist_zip(resp.content, name)
        return parse_xml(resp.content, name)


def _fail(name: str, what: str) -> UpstreamError:
    return UpstreamError(f"Bad Gateway: {NAME} {name} is malformed: {what}")


def _rate(text: str | None, name: str, where: str) -> Decimal:
    if text is None:
        raise _fail(name, f"{where}: no rate")
    try:
        value = exact_number(text, "rate")
    except ValueError as exc:
        raise _fail(name, f"{where}: rate {text[:40]!r} {str(exc).removeprefix('rate ')}") from None
    if value <= 0:
        raise _fail(name, f"{where}: rate {text!r} is not a positive number")
    return value


def _day(text: str | None, name: str, where: str) -> date:
    try:
        day = date.fromisoformat(text or "")
    except ValueError:
        raise _fail(name, f"{where}: {str(text)[:40]!r} is not a date") from None
    if not FIRST_DAY <= day < LAST_DAY:
        raise _fail(name, f"{where}: {day} is outside {FIRST_DAY}..{LAST_DAY}")
    return day


def parse_xml(content: bytes, name: str = DAILY) -> list[Rate]:
    """Parse the daily or 90-day gesmes XML into rates."""
    try:
        root = SafeET.fromstring(content)
    except (SafeET.ParseError, DefusedXmlException) as exc:
        raise _fail(name, f"not well-formed XML ({exc})") from exc
    outer = root.find(f"{_NS}Cube")
    if outer is None:
        raise _fail(name, "no Cube element")
    rates = []
    for day_cube in outer.findall(f"{_NS}Cube"):
        day = _day(day_cube.get("time"), name, "Cube time")
        cubes = day_cube.findall(f"{_NS}Cube")
        if not cubes:
            raise _fail(name, f"{day} has no rates")
        for cube in cubes:
            currency = cube.get("currency") or ""
            if not _CURRENCY.match(currency):
                raise _fail(name, f"{day}: currency {currency!r} is not a 3-letter code")
            rates.append(Rate(day, currency, _rate(cube.get("rate"), name, f"{day} {currency}")))
    if not rates:
        raise _fail(name, "no rates")
    return rates


def parse_hist_zip(content: bytes, name: str = HIST_ZIP) -> Iterator[Rate]:
    """Read the full-history zip's one CSV as rates, streaming: N/A cells skipped,
    trailing column ignored; a defect anywhere raises (the caller's store rolls back).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            members = [m for m in archive.infolist() if m.filename.endswith(".csv")]
            if len(members) != 1:
                raise _fail(name, f"expected one CSV inside, found {len(members)}")
            if members[0].file_size > MAX_CSV_BYTES:
                raise _fail(name, f"the CSV inside is larger than {MAX_CSV_BYTES} bytes")
            if members[0].compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                # The ECB's is deflated; bzip2 and LZMA zipfile decodes a chunk at a time,
                # whole, before it cuts at the declared size.
                raise _fail(name, "the CSV inside is compressed, but not by deflate")
            # zipfile reads no more than the size it checked above (then checks the CRC).
            with archive.open(members[0]) as raw:
                text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
                yield from _parse_hist_csv(_lines(text, name), name)
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, NotImplementedError) as exc:
        raise _fail(name, f"not a readable zip ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise _fail(name, "the CSV is not UTF-8") from exc
    except csv.Error as exc:
        raise _fail(name, f"the CSV is malformed ({exc})") from exc


def _lines(text: io.TextIOBase, name: str) -> Iterator[str]:
    """The CSV's lines, each refused, before it is read whole, when longer than any real one."""
    for number in itertools.count(1):
        line = text.readline(MAX_CSV_LINE + 1)
        if not line:
            return
        if len(line) > MAX_CSV_LINE:
            raise _fail(name, f"line {number} is longer than {MAX_CSV_LINE} characters")
        yield line


def _parse_hist_csv(lines: Iterable[str], name: str) -> Iterator[Rate]:
    reader = csv.reader(lines)
    header = next(reader, None)
    if not header or header[0].strip() != "Date":
        raise _fail(name, "the CSV does not start with a Date column")
    columns = [c.strip() for c in header[1:]]
    trailing = 0
    while columns and columns[-1] == "":
        columns.pop()  # the trailing empty column every line ends with
        trailing += 1
    if len(columns) > MAX_CURRENCIES:
        raise _fail(name, f"the CSV has {len(columns)} currency columns, more than any real one")
    for currency in columns:
        if not _CURRENCY.match(currency):
            raise _fail(name, f"column {currency!r} is not a 3-letter currency code")
    width = 1 + len(columns) + trailing
    count = 0
    days: set[date] = set()
    for line_number, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        cells = [c.strip() for c in row]
        if len(cells) != width or any(cells[width - trailing :]):
            raise _fail(name, f"line {line_number} has {len(cells)} cells, expected {width}")
        day = _day(cells[0], name, f"line {line_number}")
        if day in days or len(days) >= MAX_DAYS:
            raise _fail(name, f"line {line_number}: {day} is repeated, or too many days")
        days.add(day)
        for currency, cell in zip(columns, cells[1 : 1 + len(columns)], strict=True):
            if cell == "N/A":
                continue
            count += 1
            yield Rate(day, currency, _rate(cell, name, f"line {line_number} {currency}"))
    if count == 0:
        raise _fail(name, "no rates")
