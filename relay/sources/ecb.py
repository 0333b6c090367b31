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
import re
import zipfile
from collections.abc import Iterator
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from relay.errors import UpstreamError
from relay.sources.http import UpstreamClient

NAME = "ECB"
DAILY = "eurofxref-daily.xml"
HIST_90D = "eurofxref-hist-90d.xml"
HIST_ZIP = "eurofxref-hist.zip"
_NS = "{http://www.ecb.int/vocabulary/2002-08-01/eurofxref}"
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# The zip is a few hundred KB; its CSV a few MB. Anything far larger is not it.
MAX_CSV_BYTES = 64 * 1024 * 1024


class Rate(NamedTuple):
    """One published rate: units of ``currency`` per 1 EUR on ``day``."""

    day: date
    currency: str
    rate: Decimal


class ECBSource:
    def __init__(self, client: UpstreamClient, base_url: str):
        self.client = client
        self.base_url = base_url.rstrip("/")

    def fetch(self, name: str, *, deadline: float | None = None) -> list[Rate]:
        """Fetch and parse one of the three files; any defect fails the whole file."""
        resp = self.client.get(f"{self.base_url}/{name}", deadline=deadline)
        if resp.status_code != 200:
            raise UpstreamError(f"Bad Gateway: {NAME} answered HTTP {resp.status_code} for {name}")
        if name.endswith(".zip"):
            return parse_hist_zip(resp.content, name)
        return parse_xml(resp.content, name)


def _fail(name: str, what: str) -> UpstreamError:
    return UpstreamError(f"Bad Gateway: {NAME} {name} is malformed: {what}")


def _rate(text: str | None, name: str, where: str) -> Decimal:
    try:
        value = Decimal(text or "")
    except InvalidOperation:
        raise _fail(name, f"{where}: rate {text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise _fail(name, f"{where}: rate {text!r} is not a positive number")
    return value


def _day(text: str | None, name: str, where: str) -> date:
    try:
        return date.fromisoformat(text or "")
    except ValueError:
        raise _fail(name, f"{where}: {text!r} is not a date") from None


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


def parse_hist_zip(content: bytes, name: str = HIST_ZIP) -> list[Rate]:
    """Parse the full-history zip: one CSV, N/A cells skipped, trailing column ignored."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            members = [m for m in archive.infolist() if m.filename.endswith(".csv")]
            if len(members) != 1:
                raise _fail(name, f"expected one CSV inside, found {len(members)}")
            if members[0].file_size > MAX_CSV_BYTES:
                raise _fail(name, "the CSV inside is too large")
            text = archive.read(members[0]).decode("utf-8-sig")
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as exc:
        raise _fail(name, f"not a readable zip ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise _fail(name, "the CSV is not UTF-8") from exc
    return list(_parse_hist_csv(text, name))


def _parse_hist_csv(text: str, name: str) -> Iterator[Rate]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or header[0].strip() != "Date":
        raise _fail(name, "the CSV does not start with a Date column")
    columns = [c.strip() for c in header[1:]]
    trailing = 0
    while columns and columns[-1] == "":
        columns.pop()  # the trailing empty column every line ends with
        trailing += 1
    for currency in columns:
        if not _CURRENCY.match(currency):
            raise _fail(name, f"column {currency!r} is not a 3-letter currency code")
    width = 1 + len(columns) + trailing
    count = 0
    for line_number, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        cells = [c.strip() for c in row]
        if len(cells) != width or any(cells[width - trailing :]):
            raise _fail(name, f"line {line_number} has {len(cells)} cells, expected {width}")
        day = _day(cells[0], name, f"line {line_number}")
        for currency, cell in zip(columns, cells[1 : 1 + len(columns)], strict=True):
            if cell == "N/A":
                continue
            count += 1
            yield Rate(day, currency, _rate(cell, name, f"line {line_number} {currency}"))
    if count == 0:
        raise _fail(name, "no rates")
