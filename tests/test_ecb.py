"""ECB reference rates: relay-in from a loopback ECB, rates/series/convert out."""

from __future__ import annotations

import decimal
import time
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from relay import fx
from tests.upstreams import (
    SAMPLES,
    FakeECB,
    ecb_days,
    ecb_hist_zip,
    ecb_xml,
    synthetic_ecb_history,
)

IN = "/relay-api/v1/relay-in/ecb"
OUT = "/relay-api/v1/relay-out"
DAILY = "eurofxref-daily.xml"
HIST_90D = "eurofxref-hist-90d.xml"
ZIP = "eurofxref-hist.zip"
NOW = datetime(2018, 6, 12, 9, 0, tzinfo=UTC)  # a Tuesday morning, before publication

REAL_90D = ecb_days((SAMPLES / "ecb_hist90d.xml").read_text())  # 2018-03-14 .. 2018-06-11
REAL_DAILY = ecb_days((SAMPLES / "ecb_daily.xml").read_text())  # 2018-06-11, 4-digit text
COLUMNS = [
    "USD",
    "JPY",
    "CYP",
    *sorted(c for c in REAL_DAILY["2018-06-11"] if c not in ("USD", "JPY")),
]


@pytest.fixture
def ecb(httpserver):
    return FakeECB(httpserver)


@pytest.fixture
def config(config, httpserver):
    return config.replace(ecb_url=httpserver.url_for("/").rstrip("/"))


@pytest.fixture
def app(make_app, config):
    return make_app(config, now=lambda: NOW)


def count(conn, *, currency=None, day=None):
    return conn.execute(
        "SELECT count(*) FROM ecb_rate WHERE (%(c)s::text IS NULL OR currency = %(c)s) "
        "AND (%(d)s::date IS NULL OR day = %(d)s)",
        {"c": currency, "d": day},
    ).fetchone()[0]


def history_until(last_day: str) -> dict:
    """The real 90-day data up to ``last_day``: a history file as the ECB would serve it."""
    return {d: r for d, r in REAL_90D.items() if d <= last_day}


@pytest.fixture
def loaded(app, ecb, in_headers):
    """Backfilled from the zip (to 2018-06-08), then the real daily file (2018-06-11)."""
    ecb.files[ZIP] = ecb_hist_zip(history_until("2018-06-08"), COLUMNS)
    ecb.files[DAILY] = (SAMPLES / "ecb_daily.xml").read_bytes()
    return app.post(IN, headers=in_headers, status=201)


def test_an_empty_table_backfills_from_the_zip_then_takes_the_daily_file(loaded, ecb, conn):
    history = history_until("2018-06-08")
    expected = sum(len(r) for r in history.values()) + len(REAL_DAILY["2018-06-11"])
    assert loaded.json["data"]["processed"] == expected
    assert ecb.requests == [DAILY, ZIP]
    assert count(conn) == expected
    # N/A cells (CYP, a currency no longer published) store nothing.
    assert count(conn, currency="CYP") == 0
    # Every published digit: the daily file says 0.88180 for GBP.
    gbp = conn.execute(
        "SELECT rate::text FROM ecb_rate WHERE day = '2018-06-11' AND currency = 'GBP'"
    ).fetchone()[0]
    assert gbp == "0.88180"


def test_rerunning_changes_nothing(loaded, app, ecb, conn, in_headers):
    before = count(conn)
    app.post(IN, headers=in_headers, status=204)
    assert count(conn) == before
    assert ecb.requests[-1] == DAILY and ecb.requests.count(ZIP) == 1


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "text/plain", "application/json"]
)
def test_an_empty_body_is_no_body_whatever_type_it_claims(loaded, app, in_headers, content_type):
    # `curl -X POST -d ''` sends an empty form; some servers call a bare POST text/plain.
    headers = {**in_headers, "Content-Type": content_type}
    app.post(IN, b"", headers=headers, status=204)
    resp = app.post(IN, b"[1]", headers={**in_headers, "Content-Type": "application/json"},
                    status=400)  # fmt: skip
    assert resp.json["message"] == "Bad Request: ecb relay-in takes no body"


def test_a_gap_under_90_days_is_filled_from_the_90_day_file(app, ecb, conn, in_headers):
    early = synthetic_ecb_history(date(2018, 1, 1), date(2018, 3, 13), ["USD", "JPY"])
    ecb.files[ZIP] = ecb_hist_zip(early, ["USD", "JPY"])
    ecb.files[DAILY] = ecb_xml({"2018-03-14": REAL_90D["2018-03-14"]})
    app.post(IN, headers=in_headers, status=201)
    assert count(conn, day="2018-03-14") == len(REAL_90D["2018-03-14"])

    ecb.files[HIST_90D] = (SAMPLES / "ecb_hist90d.xml").read_bytes()
    ecb.files[DAILY] = (SAMPLES / "ecb_daily.xml").read_bytes()
    app.post(IN, headers=in_headers, status=201)

    assert ecb.requests[-2:] == [DAILY, HIST_90D]
    days = [r[0] for r in conn.execute("SELECT DISTINCT day FROM ecb_rate ORDER BY 1")]
    assert [d.isoformat() for d in days if d >= date(2018, 3, 14)] == sorted(REAL_90D)


def test_the_daily_file_the_day_after_needs_no_backfill(loaded, app, ecb, in_headers):
    next_day = {"2018-06-12": {"USD": "1.1780", "JPY": "129.98"}}
    ecb.files[DAILY] = ecb_xml(next_day)
    resp = app.post(IN, headers=in_headers, status=201)
    assert resp.json["data"]["processed"] == 2
    assert ecb.requests[-1] == DAILY and ecb.requests.count(ZIP) == 1


def test_get_route_with_source_ecb(loaded, app, ecb, in_headers):
    app.get("/relay-api/v1/relay-in", {"source": "ecb"}, headers=in_headers, status=204)


@pytest.mark.parametrize(
    "broken",
    [
        ("zip", b"PK\x03\x04 this is not a whole zip"),
        ("zip", None),  # a real zip cut in half, set below
        ("daily", b"<gesmes:Envelope><Cube><Cube time='2018-06-11'>"),
        ("daily", ecb_xml({"2018-06-11": {"USD": "one point one"}})),
        ("daily", ecb_xml({"2018-13-45": {"USD": "1.1"}})),
        ("daily", ecb_xml({"2018-06-11": {"USD": "1.1"}}).replace(b" rate='1.1'", b"")),
    ],
)
def test_a_malformed_file_is_502_and_stores_nothing(app, ecb, conn, in_headers, broken):
    which, content = broken
    good_zip = ecb_hist_zip(history_until("2018-06-08"), COLUMNS)
    ecb.files[ZIP] = good_zip
    ecb.files[DAILY] = (SAMPLES / "ecb_daily.xml").read_bytes()
    if which == "zip":
        ecb.files[ZIP] = content if content is not None else good_zip[: len(good_zip) // 2]
    else:
        ecb.files[DAILY] = content
    resp = app.post(IN, headers=in_headers, status=502)
    assert resp.json["message"].startswith("Bad Gateway: ECB eurofxref-")
    assert "malformed" in resp.json["message"]
    assert count(conn) == 0


def test_a_csv_with_a_ragged_line_names_it(app, ecb, conn, in_headers):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "eurofxref-hist.csv", "Date,USD,JPY,\n2018-06-08,1.1,130.0,\n2018-06-07,1.2,\n"
        )
    ecb.files[ZIP] = buffer.getvalue()
    ecb.files[DAILY] = (SAMPLES / "ecb_daily.xml").read_bytes()
    resp = app.post(IN, headers=in_headers, status=502)
    assert "line 3" in resp.json["message"]
    assert count(conn) == 0


def test_the_whole_history_backfills_in_one_run(app, ecb, conn, in_headers):
    currencies = [c for c in COLUMNS if c != "CYP"][:30]
    history = synthetic_ecb_history(date(1999, 1, 4), date(2026, 11, 20), currencies)
    ecb.files[ZIP] = ecb_hist_zip(history, currencies)
    ecb.files[DAILY] = ecb_xml({"2026-11-23": dict.fromkeys(currencies, "1.5")})
    started = time.perf_counter()
    resp = app.post(IN, headers=in_headers, status=201)
    elapsed = time.perf_counter() - started
    rows = len(history) * 30 + 30
    assert resp.json["data"]["processed"] == rows
    assert count(conn) == rows
    print(f"\nECB full history: {rows} rows in {elapsed:.2f} s ({rows / elapsed:,.0f} rows/s)")


# -- relay-out ------------------------------------------------------------------------


def get(app, route, query, headers, **kwargs):
    return app.get(f"{OUT}/{route}", query, headers=headers, **kwargs)


def test_latest_rates_against_eur_are_the_published_digits(loaded, app, out_headers):
    data = get(app, "rates", {"symbols": "USD,GBP"}, out_headers).json["data"]
    assert data == {
        "base": "EUR",
        "date_requested": "latest",
        "date": "2018-06-11",
        "rates": {"USD": "1.1790", "GBP": "0.88180"},
    }


def test_all_rates_when_no_symbols(loaded, app, out_headers):
    rates = get(app, "rates", {}, out_headers).json["data"]["rates"]
    assert len(rates) == len(REAL_DAILY["2018-06-11"])


@pytest.mark.parametrize(
    ("asked", "used"),
    [
        ("2018-06-10", "2018-06-08"),  # Sunday
        ("2018-06-09", "2018-06-08"),  # Saturday
        ("2018-03-30", "2018-03-29"),  # Good Friday: TARGET closed
        ("2018-04-02", "2018-03-29"),  # Easter Monday too
        ("2018-05-01", "2018-04-30"),  # Labour Day
        ("2018-06-08", "2018-06-08"),
    ],
)
def test_weekends_and_holidays_answer_the_nearest_earlier_business_day(
    loaded, app, out_headers, asked, used
):
    data = get(app, "rates", {"date": asked, "symbols": "USD"}, out_headers).json["data"]
    assert data["date"] == used
    assert data["rates"]["USD"] == f"{Decimal(REAL_90D[used]['USD'])}"


def test_cross_rates_through_the_euro(loaded, app, out_headers):
    data = get(
        app, "rates", {"date": "2018-06-11", "base": "usd", "symbols": "JPY,EUR,USD"}, out_headers
    ).json["data"]
    ctx = decimal.Context(prec=10, rounding=decimal.ROUND_HALF_EVEN)
    assert data["base"] == "USD"
    assert data["rates"] == {
        "JPY": f"{ctx.divide(Decimal('129.62'), Decimal('1.1790')):f}",  # 109.9406277
        "EUR": f"{ctx.divide(Decimal(1), Decimal('1.1790')):f}",
        "USD": "1",
    }
    assert data["rates"]["JPY"] == "109.9406277"


def test_convert_worked_out_by_hand(loaded, app, out_headers):
    query = {"from": "USD", "to": "JPY", "amount": "100", "date": "2018-06-11"}
    data = get(app, "convert", query, out_headers).json["data"]
    # 100 x 129.62 / 1.1790 = 10994.06276505513146734520780322...
    assert data == {
        "from": "USD",
        "to": "JPY",
        "amount": "100",
        "date_requested": "2018-06-11",
        "date": "2018-06-11",
        "rate": "109.9406277",
        "result": "10994.062765",
    }
    eur = get(app, "convert", {"from": "EUR", "to": "GBP", "amount": "10"}, out_headers).json[
        "data"
    ]
    assert eur["rate"] == "0.88180" and eur["result"] == "8.818000"


def test_convert_keeps_every_digit_at_the_extremes_an_upstream_may_send(
    loaded, app, out_headers, conn
):
    """Rates as far apart as relay takes them (1e-59 and 1e59 per EUR) and the largest
    amount: the result is 1e136, given to six decimals, not a 500."""
    conn.execute(
        "INSERT INTO ecb_rate (day, currency, rate) VALUES "
        "('2018-06-12', 'AAA', %s), ('2018-06-12', 'ZZZ', %s)",
        ("0." + "0" * 58 + "1", "1" + "0" * 59),
    )
    query = {"from": "AAA", "to": "ZZZ", "amount": "1000000000000000000", "date": "2018-06-12"}
    data = get(app, "convert", query, out_headers).json["data"]
    assert data["result"] == f"{10**136}.000000"


def test_series_over_business_days(loaded, app, out_headers):
    query = {"start": "2018-06-04", "end": "2018-06-11", "base": "USD", "symbols": "JPY"}
    data = get(app, "rates/series", query, out_headers).json["data"]
    assert data["base"] == "USD" and data["start"] == "2018-06-04" and data["end"] == "2018-06-11"
    assert list(data["rates"]) == [
        "2018-06-04",
        "2018-06-05",
        "2018-06-06",
        "2018-06-07",
        "2018-06-08",
        "2018-06-11",
    ]
    ctx = decimal.Context(prec=10)
    jpy, usd = Decimal(REAL_90D["2018-06-05"]["JPY"]), Decimal(REAL_90D["2018-06-05"]["USD"])
    assert data["rates"]["2018-06-05"] == {"JPY": f"{ctx.divide(jpy, usd):f}"}


@pytest.mark.parametrize(
    ("route", "query", "status", "named"),
    [
        ("rates", {"symbols": "XYZ"}, 404, "XYZ"),
        ("rates", {"base": "CYP"}, 404, "CYP"),
        ("rates", {"date": "1998-12-31"}, 404, "1999-01-04"),
        ("rates", {"date": "2018-06-13"}, 400, "future"),
        ("rates", {"date": "11/06/2018"}, 400, "date"),
        ("rates", {"date": "2018-02-30"}, 400, "date"),
        ("rates", {"symbols": "US"}, 400, "symbols"),
        ("rates", {"base": "EURO"}, 400, "base"),
        ("rates/series", {"end": "2018-06-11"}, 400, "start"),
        ("rates/series", {"start": "2018-06-11", "end": "2018-06-01"}, 400, "start"),
        ("rates/series", {"start": "2017-01-01", "end": "2018-06-11"}, 400, "366"),
        ("convert", {"from": "USD", "to": "JPY", "amount": "lots"}, 400, "amount"),
        ("convert", {"from": "USD", "to": "JPY", "amount": "-1"}, 400, "amount"),
        ("convert", {"from": "USD", "to": "JPY", "amount": "NaN"}, 400, "amount"),
        ("convert", {"from": "USD", "amount": "1"}, 400, "to"),
        ("convert", {"from": "USD", "to": "XXX"}, 404, "XXX"),
    ],
)
def test_bad_requests(loaded, app, out_headers, route, query, status, named):
    resp = get(app, route, query, out_headers, status=status)
    assert named in resp.json["message"]


def test_past_dates_are_immutable_with_a_strong_etag_and_304(loaded, app, out_headers):
    query = {"date": "2018-06-08", "symbols": "USD"}
    first = get(app, "rates", query, out_headers)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert first.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    again = get(app, "rates", query, {**out_headers, "If-None-Match": etag}, status=304)
    assert again.body == b""
    assert again.headers["ETag"] == etag
    other = get(
        app,
        "rates",
        {"date": "2018-06-07", "symbols": "USD"},
        {**out_headers, "If-None-Match": etag},
    )
    assert other.status_int == 200 and other.headers["ETag"] != etag


def test_latest_is_cacheable_only_until_the_next_publication(loaded, app, out_headers):
    resp = get(app, "rates", {"symbols": "USD"}, out_headers)
    # NOW is Tuesday 09:00 UTC; the next publication is 16:00 CEST = 14:00 UTC: 5 hours.
    assert resp.headers["Cache-Control"] == "private, max-age=18000"


# -- dates never silently substituted ------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "sunday"),
    [(1999, "04-04"), (2000, "04-23"), (2008, "03-23"), (2011, "04-24"), (2018, "04-01"),
     (2019, "04-21"), (2024, "03-31"), (2025, "04-20"), (2038, "04-25"), (2285, "03-22")],
)  # fmt: skip
def test_easter_is_computed_for_any_year(year, sunday):
    assert fx.easter(year) == date.fromisoformat(f"{year}-{sunday}")


def test_target_business_days():
    closed = ["2024-01-01", "2024-03-29", "2024-04-01", "2024-05-01", "2024-12-25",
              "2024-12-26", "2025-04-18", "2025-04-21", "2024-06-08", "2024-06-09"]  # fmt: skip
    open_ = ["2024-01-02", "2024-03-28", "2024-04-02", "2024-05-02", "2024-12-24",
             "2024-12-27", "2024-12-31", "2025-04-17", "2025-04-22", "2024-06-10"]  # fmt: skip
    assert not any(fx.business_day(date.fromisoformat(d)) for d in closed)
    assert all(fx.business_day(date.fromisoformat(d)) for d in open_)
    # Before 2000 the ECB published on Good Friday and Easter Monday; it did not on
    # 31 December 1999, 2000 and 2001 (its own history has no rates for those days).
    assert fx.business_day(date(1999, 4, 2)) and fx.business_day(date(1999, 4, 5))
    assert not any(fx.business_day(date(year, 12, 31)) for year in (1999, 2001))
    assert fx.business_day(date(2002, 12, 31)) and fx.business_day(date(2003, 12, 31))
    assert fx.previous_business_day(date(2000, 1, 3)) == date(1999, 12, 30)
    # Christmas Eve 2024 is a Tuesday: after it, Wednesday and Thursday are closed.
    assert fx.previous_business_day(date(2024, 12, 27)) == date(2024, 12, 24)
    assert fx.previous_business_day(date(2025, 4, 22)) == date(2025, 4, 17)


def later_app(make_app, config, today: str):
    """The loaded rates (to 2018-06-11), read by a service whose clock says ``today``."""
    now = datetime.combine(date.fromisoformat(today), datetime.min.time(), UTC)
    return make_app(config, now=lambda: now.replace(hour=12))


def test_rates_name_the_date_asked_and_the_date_used(loaded, app, out_headers):
    data = get(app, "rates", {"date": "2018-06-10", "symbols": "USD"}, out_headers).json["data"]
    assert data["date_requested"] == "2018-06-10" and data["date"] == "2018-06-08"
    # Today (a Tuesday) before 16:00 CET: the rates of the business day before.
    data = get(app, "rates", {"date": "2018-06-12", "symbols": "USD"}, out_headers).json["data"]
    assert data["date_requested"] == "2018-06-12" and data["date"] == "2018-06-11"
    query = {"from": "USD", "to": "JPY", "date": "2018-06-09"}
    data = get(app, "convert", query, out_headers).json["data"]
    assert data["date_requested"] == "2018-06-09" and data["date"] == "2018-06-08"


@pytest.mark.parametrize("route", ["rates", "convert"])
def test_a_date_past_the_previous_business_day_is_404_naming_the_newest_day(
    loaded, make_app, config, out_headers, route
):
    app = later_app(make_app, config, "2020-03-10")
    query = {"date": "2020-03-02", **({"from": "USD", "to": "JPY"} if route == "convert" else {})}
    resp = get(app, route, query, out_headers, status=404)
    assert "2018-06-11" in resp.json["message"] and "2020-03-02" in resp.json["message"]
    assert resp.json["data"] == {"date_requested": "2020-03-02", "newest": "2018-06-11"}
    # Wednesday 2018-06-13: Tuesday's rates are not held, Monday's are two business days back.
    resp = get(app, route, {**query, "date": "2018-06-13"}, out_headers, status=404)
    assert resp.json["data"]["newest"] == "2018-06-11"
    # Sunday 2018-06-17 may mean Friday 2018-06-15, not held either.
    get(app, route, {**query, "date": "2018-06-17"}, out_headers, status=404)
    # A date before the days held (but after 1999-01-04) is no different.
    resp = get(app, route, {**query, "date": "2017-01-02"}, out_headers, status=404)
    assert resp.json["data"]["newest"] == "2018-06-11"


@pytest.mark.parametrize("route", ["rates", "convert"])
def test_a_business_day_missing_among_the_days_held_is_404_not_the_day_before(
    loaded, app, conn, out_headers, route
):
    # A relay that missed Thursday 2018-06-07 holds Wednesday and Friday: Thursday's
    # answer is not Wednesday's, cached for a year as if it were Thursday's own.
    conn.execute("DELETE FROM ecb_rate WHERE day = '2018-06-07'")
    conn.commit()
    query = {"date": "2018-06-07", **({"from": "USD", "to": "JPY"} if route == "convert" else {})}
    resp = get(app, route, query, out_headers, status=404)
    assert "2018-06-07" in resp.json["message"] and "business day" in resp.json["message"]
    assert resp.json["data"] == {"date_requested": "2018-06-07", "newest": "2018-06-11"}
    # The weekend after a held Friday still means that Friday.
    data = get(app, route, {**query, "date": "2018-06-09"}, out_headers).json["data"]
    assert data["date"] == "2018-06-08"


def test_a_series_answers_the_days_held_and_is_404_naming_them_outside(
    loaded, app, make_app, config, out_headers
):
    # Days held without a publication (a weekend): an explicit empty answer with the range.
    query = {"start": "2018-06-09", "end": "2018-06-10", "symbols": "USD"}
    data = get(app, "rates/series", query, out_headers).json["data"]
    assert data == {"base": "EUR", "start": "2018-06-09", "end": "2018-06-10", "rates": {}}
    # Today, before its publication, ends at the business day before.
    query = {"start": "2018-06-08", "end": "2018-06-12", "symbols": "USD"}
    assert list(get(app, "rates/series", query, out_headers).json["data"]["rates"]) == [
        "2018-06-08", "2018-06-11"
    ]  # fmt: skip

    app = later_app(make_app, config, "2020-03-10")
    query = {"start": "2020-01-01", "end": "2020-01-31", "symbols": "USD"}
    resp = get(app, "rates/series", query, out_headers, status=404)
    assert "2018-06-11" in resp.json["message"]
    assert resp.json["data"] == {"end": "2020-01-31", "newest": "2018-06-11"}
    # Without an end the series runs to the newest day held: a start after it has none.
    resp = get(app, "rates/series", {"start": "2020-01-01"}, out_headers, status=404)
    assert resp.json["data"] == {"start": "2020-01-01", "newest": "2018-06-11"}
    # A range that runs past the days held would stop short of its end without a word.
    resp = get(app, "rates/series", {"start": "2018-06-01", "end": "2018-07-31"}, out_headers,
               status=404)  # fmt: skip
    assert resp.json["data"]["newest"] == "2018-06-11"
    # Or start after its start: the days held begin on 2018-03-14.
    resp = get(app, "rates/series", {"start": "2018-03-01", "end": "2018-03-20"}, out_headers,
               status=404)  # fmt: skip
    assert resp.json["data"] == {
        "start": "2018-03-01", "held_from": "2018-03-14", "newest": "2018-06-11"
    }  # fmt: skip
