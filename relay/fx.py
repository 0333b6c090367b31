"""Euro reference rates: rates on a day, series, conversions; cross rates through the euro."""

from __future__ import annotations

import decimal
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from relay.changes import AnswerCache
from relay.errors import BadRequest, NotFound
from relay.reads import Reads
from relay.sources.ecb import store as rate_store
from relay.sources.numbers import ARITHMETIC as _CONTEXT

CONCERN = "rates"  # what the ECB relay-in announces
FIRST_PUBLISHED = date(1999, 1, 4)
MAX_SERIES_DAYS = 366
# Cross rates: 10 significant digits; conversion results: 6 decimal places;
# both half-to-even, the results from an exact intermediate (ARITHMETIC). Rates against EUR are the
# ECB's own digits.
_CROSS = decimal.Context(prec=10, rounding=decimal.ROUND_HALF_EVEN)
RESULT = Decimal("0.000001")
IMMUTABLE = "private, max-age=31536000, immutable"  # a token is needed: no shared cache
_CET = ZoneInfo("Europe/Berlin")
PUBLICATION = time(16, 0)  # around 16:00 CET each business day


def cross(rate_to: Decimal, rate_from: Decimal) -> Decimal:
    """Units of ``to`` per unit of ``from``, both given per EUR."""
    if rate_from == 1:
        return rate_to  # base EUR: the published digits as they are
    return _CROSS.divide(rate_to, rate_from)


def easter(year: int) -> date:
    """Easter Sunday of ``year`` in the Gregorian calendar (the anonymous algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (b - (b + 8) // 25 + 1) // 3
    h = (19 * a + b - d - g + 15) % 30  # the epact's offset: days from 21 March to full moon
    i, k = divmod(c, 4)
    weekday = (32 + 2 * e + 2 * i - h - k) % 7  # days from the full moon to Sunday
    m = (a + 11 * h + 22 * weekday) // 451
    month, day = divmod(h + weekday - 7 * m + 114, 31)
    return date(year, month, day + 1)


def business_day(day: date) -> bool:
    """Whether the ECB publishes on ``day``: a weekday that is no TARGET holiday (New
    Year's Day, Good Friday, Easter Monday, 1 May, 25 and 26 December; Good Friday and
    Easter Monday from 2000, and 31 December too in 1999-2001, as the ECB's own history
    shows)."""
    if day.weekday() >= 5 or (day.month, day.day) in ((1, 1), (5, 1), (12, 25), (12, 26)):
        return False
    if (day.month, day.day) == (12, 31) and 1999 <= day.year <= 2001:
        return False
    if day.year < 2000:
        return True
    sunday = easter(day.year)
    return day not in (sunday - timedelta(days=2), sunday + timedelta(days=1))


def previous_business_day(day: date) -> date:
    """The last ECB business day strictly before ``day``."""
    day -= timedelta(days=1)
    while not business_day(day):
        day -= timedelta(days=1)
    return day


def next_publication(after: datetime) -> datetime:
    """The next business day's 16:00 CET after ``after``, in UTC."""
    local = after.astimezone(_CET)
    day = local.date()
    if local.time() >= PUBLICATION or not business_day(day):
        day += timedelta(days=1)
    while not business_day(day):
        day += timedelta(days=1)
    return datetime.combine(day, PUBLICATION, _CET).astimezone(UTC)


class FX:
    """Read rates for relay-out. ``now`` decides how long an answer may be cached (a date
    after today never reaches here: relay.params refuses it on every route)."""

    def __init__(
        self,
        reads: Reads,
        now: Callable[[], datetime],
        cache: AnswerCache | None = None,
    ):
        self._reads = reads
        self.now = now
        self.cache = cache or AnswerCache(None)

    def _check_date(self, on: date, name: str) -> None:
        if on < FIRST_PUBLISHED:
            raise NotFound(
                f"Not Found: no rates before {FIRST_PUBLISHED.isoformat()} ({name} parameter)"
            )

    @staticmethod
    def _day(conn, on: date | None) -> tuple[date, date]:
        """The day ``on`` means, and the newest day held (asked once, for both).

        The day is ``on`` itself, or else the newest day held before it no further back
        than the previous ECB business day (a weekend or holiday means the business day
        before it; today, before the day's publication, means the last one). Anything
        older would answer another day's rates for this one: a 404 naming the newest day
        held instead."""
        newest = rate_store.newest_day(conn)
        if newest is None:
            raise NotFound("Not Found: no rates stored")
        if on is None:
            return newest, newest
        day = rate_store.day_at_or_before(conn, on)
        if day is None or day < previous_business_day(on):
            raise NotFound(
                f"Not Found: no rates for {on.isoformat()} or the business day before it; "
                f"the newest day held is {newest.isoformat()}",
                data={"date_requested": on.isoformat(), "newest": newest.isoformat()},
            )
        if day < on < newest and business_day(on):
            # A business day missing among the days held is a hole in what was relayed,
            # not a day without rates: the day before would be cached as if it were its.
            raise NotFound(
                f"Not Found: no rates held for {on.isoformat()}, a business day; "
                f"the newest day held is {newest.isoformat()}",
                data={"date_requested": on.isoformat(), "newest": newest.isoformat()},
            )
        return day, newest

    def _require(self, conn, rates: dict, currencies: Sequence[str], day: date) -> None:
        for currency in currencies:
            if currency != "EUR" and currency not in rates:
                if rate_store.known_currency(conn, currency):
                    raise NotFound(f"Not Found: no {currency} rate on {day.isoformat()}")
                raise NotFound(f"Not Found: unknown currency {currency}")

    def cache_policy(self, on: date | None, newest: date) -> str:
        """An answer for a date we already hold a later-or-equal day for never changes
        (the ECB does not revise); ``latest`` and later dates last until the next publication.
        """
        if on is not None and on <= newest:
            return IMMUTABLE
        seconds = int((next_publication(self.now()) - self.now()).total_seconds())
        return f"private, max-age={max(60, seconds)}"

    def _published(self, on: date | None, currencies: tuple[str, ...]) -> tuple:
        """The day a date means, its rates per EUR (EUR included), and the newest day."""
        with self._reads.connection(CONCERN) as conn:
            day, newest = self._day(conn, on)
            published = {"EUR": Decimal(1), **rate_store.rates_on(conn, day)}
            self._require(conn, published, currencies, day)
            return day, published, newest

    def _cached_published(self, on: date | None, currencies: tuple[str, ...]) -> tuple:
        return self.cache.get(
            CONCERN, ("published", on, currencies), lambda: self._published(on, currencies)
        )

    def rates(self, on: date | None, base: str, symbols: Sequence[str] | None) -> tuple[dict, str]:
        if on is not None:
            self._check_date(on, "date")
        day, published, newest = self._cached_published(on, (base, *(symbols or ())))
        wanted = symbols or sorted(c for c in published if c != base)
        rates = {c: cross(published[c], published[base]) for c in wanted}
        data = {"base": base, "date_requested": on or "latest", "date": day, "rates": rates}
        return data, self.cache_policy(on, newest)

    def series(
        self, start: date, end: date | None, base: str, symbols: Sequence[str] | None
    ) -> tuple[dict, str]:
        self._check_date(start, "start")
        if end is not None:
            self._check_date(end, "end")
        key = ("series", start, end, base, tuple(symbols or ()))
        data, newest = self.cache.get(CONCERN, key, lambda: self._series(start, end, base, symbols))
        return data, self.cache_policy(end, newest)

    def _series(
        self, start: date, end: date | None, base: str, symbols: Sequence[str] | None
    ) -> tuple[dict, date]:
        with self._reads.connection(CONCERN) as conn:
            newest = rate_store.newest_day(conn)
            if newest is None:
                raise NotFound("Not Found: no rates stored")
            if end is None and start > newest:
                raise NotFound(
                    f"Not Found: no rates from {start.isoformat()} (start parameter); "
                    f"the newest day held is {newest.isoformat()}",
                    data={"start": start.isoformat(), "newest": newest.isoformat()},
                )
            asked_end, end = end, end or newest
            if start > end:
                raise BadRequest("Bad Request: start parameter is after end")
            if (end - start).days + 1 > MAX_SERIES_DAYS:
                raise BadRequest(
                    f"Bad Request: start parameter is more than {MAX_SERIES_DAYS} days before end"
                )
            # The range must lie within the days held: a series that stops short of its
            # end, or starts after its start, would pass a hole off as days without rates.
            if asked_end is not None:
                held = rate_store.day_at_or_before(conn, asked_end)
                if held is None or held < previous_business_day(asked_end):
                    raise NotFound(
                        f"Not Found: no rates for {asked_end.isoformat()} (end parameter) or "
                        f"the business day before it; the newest day held is "
                        f"{newest.isoformat()}",
                        data={"end": asked_end.isoformat(), "newest": newest.isoformat()},
                    )
            first = rate_store.first_day(conn)
            opening = start  # the first business day on or after start
            while not business_day(opening):
                opening += timedelta(days=1)
            if opening <= end and opening < first:
                raise NotFound(
                    f"Not Found: rates are held from {first.isoformat()}; none for "
                    f"{opening.isoformat()} (start parameter)",
                    data={
                        "start": start.isoformat(),
                        "held_from": first.isoformat(),
                        "newest": newest.isoformat(),
                    },
                )
            by_day: dict[date, dict[str, Decimal]] = {}
            for day, currency, rate in rate_store.series(conn, start, end):
                by_day.setdefault(day, {"EUR": Decimal(1)})[currency] = rate
            for currency in [base, *(symbols or ())]:
                if currency != "EUR" and not rate_store.known_currency(conn, currency):
                    raise NotFound(f"Not Found: unknown currency {currency}")
        out = {}
        for day, published in by_day.items():
            if base not in published:
                continue  # the base had no rate that day (e.g. before it was published)
            wanted = symbols or sorted(c for c in published if c != base)
            out[day.isoformat()] = {
                c: cross(published[c], published[base]) for c in wanted if c in published
            }
        return {"base": base, "start": start, "end": end, "rates": out}, newest

    def convert(
        self, source: str, target: str, amount: Decimal, on: date | None
    ) -> tuple[dict, str]:
        if on is not None:
            self._check_date(on, "date")
        day, published, newest = self._cached_published(on, (source, target))
        exact = _CONTEXT.divide(_CONTEXT.multiply(amount, published[target]), published[source])
        data = {
            "from": source,
            "to": target,
            "amount": amount,
            "date_requested": on or "latest",
            "date": day,
            "rate": cross(published[target], published[source]),
            "result": exact.quantize(RESULT, context=_CONTEXT),
        }
        return data, self.cache_policy(on, newest)
