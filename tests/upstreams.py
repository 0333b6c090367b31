"""Loopback upstreams speaking each provider's documented wire format."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from werkzeug import Request, Response

# Real recorded upstream answers, read where the team keeps them (see its PROVENANCE.md).
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "upstream-samples"


@dataclass
class CoinTrade:
    """A trade as CoinAPI holds it; rendered in CoinAPI's JSON on the wire."""

    uuid: str
    time_exchange: str  # CoinAPI text, e.g. 2022-01-01T00:00:01.1510000Z
    time_coinapi: str
    price: str  # exact number text, sent as a JSON number
    size: str
    taker_side: str = "BUY"

    @property
    def when(self) -> datetime:
        return datetime.fromisoformat(self.time_exchange)

    def to_json(self, symbol_id: str) -> str:
        return (
            f'{{"symbol_id": "{symbol_id}", "time_exchange": "{self.time_exchange}", '
            f'"time_coinapi": "{self.time_coinapi}", "uuid": "{self.uuid}", '
            f'"price": {self.price}, "size": {self.size}, "taker_side": "{self.taker_side}"}}'
        )


def coinapi_time(when: datetime) -> str:
    """Format as CoinAPI does: seven fractional digits and Z."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def make_trades(
    start: datetime,
    count: int,
    *,
    step: timedelta = timedelta(seconds=1),
    price: str = "46150.12345678",
    seed: int = 0,
) -> list[CoinTrade]:
    """Make ``count`` trades one ``step`` apart with distinct exact prices."""
    trades = []
    for i in range(count):
        when = start + i * step
        trades.append(
            CoinTrade(
                uuid=str(uuid.UUID(int=(seed << 64) + i + 1)),
                time_exchange=coinapi_time(when),
                time_coinapi=coinapi_time(when + timedelta(microseconds=113)),
                price=str(Decimal(price) + Decimal(i) / Decimal(1000)),
                size=f"0.{i + 1:08d}",
                taker_side="BUY" if i % 2 == 0 else "SELL",
            )
        )
    return trades


def recorded_kraken_trades() -> list[CoinTrade]:
    """The recorded CoinAPI history page, as CoinTrade rows (exact text kept)."""
    raw = (SAMPLES / "coinapi_trades_KRAKEN_SPOT_BTC_USD_history_2022-01-01.json").read_text()
    items = json.loads(raw, parse_float=str, parse_int=str)
    return [
        CoinTrade(
            uuid=item["uuid"],
            time_exchange=item["time_exchange"],
            time_coinapi=item["time_coinapi"],
            price=item["price"],
            size=item["size"],
            taker_side=item["taker_side"],
        )
        for item in items
    ]


class FakeCoinAPI:
    """Serve ``/v1/trades/{symbol_id}/history`` from in-memory trades.

    Honors ``time_start`` (inclusive) and ``limit`` as CoinAPI does, answers
    ascending, checks the API key, and records every request it saw.
    """

    def __init__(self, httpserver, key: str = "test-coinapi-key", synthetic_per_s: int = 0):
        self.httpserver = httpserver
        self.key = key
        # With synthetic_per_s > 0, any symbol has that many trades a second up
        # to the present, made on demand (for trying the service by hand).
        self.synthetic_per_s = synthetic_per_s
        self.trades: dict[str, list[CoinTrade]] = {}
        self.requests: list[dict] = []
        # call number -> (status, body[, headers]) to answer instead of the data
        self.fail_on_call: dict[int, tuple] = {}
        httpserver.expect_request(
            uri=re.compile(r"^/v1/trades/[^/]+/history$")
        ).respond_with_handler(self._handle)

    def add(self, symbol_id: str, trades: list[CoinTrade]) -> None:
        self.trades.setdefault(symbol_id, []).extend(trades)
        self.trades[symbol_id].sort(key=lambda t: t.when)

    def _handle(self, request: Request) -> Response:
        symbol_id = request.path.split("/")[3]
        self.requests.append({"symbol_id": symbol_id, **request.args})
        call = len(self.requests)
        if call in self.fail_on_call:
            status, body, *headers = self.fail_on_call[call]
            return Response(
                body,
                status=status,
                content_type="application/json",
                headers=headers[0] if headers else None,
            )
        if request.headers.get("X-CoinAPI-Key") != self.key:
            return Response(
                '{"error": "Invalid API key"}', status=401, content_type="application/json"
            )
        start = datetime.fromisoformat(request.args["time_start"]).replace(tzinfo=UTC)
        limit = int(request.args.get("limit", 100))
        if symbol_id in self.trades:
            page = [t for t in self.trades[symbol_id] if t.when >= start][:limit]
        elif self.synthetic_per_s:
            page = synthetic_trades(start, limit, self.synthetic_per_s)
        else:
            return Response(
                '{"error": "Unknown symbol_id"}', status=550, content_type="application/json"
            )
        body = "[" + ", ".join(t.to_json(symbol_id) for t in page) + "]"
        return Response(body, status=200, content_type="application/json; charset=utf-8")


def synthetic_trades(start: datetime, limit: int, per_s: int) -> list[CoinTrade]:
    """Deterministic trades at ``per_s`` a second from ``start`` up to now."""
    step = 1_000_000 // per_s  # microseconds
    epoch = datetime(2020, 1, 1, tzinfo=UTC)
    first = -(-int((start - epoch) / timedelta(microseconds=1)) // step)  # ceil
    last = int((datetime.now(UTC) - epoch) / timedelta(microseconds=1)) // step
    trades = []
    for k in range(first, min(last + 1, first + limit)):
        when = epoch + timedelta(microseconds=k * step)
        trades.append(
            CoinTrade(
                uuid=str(uuid.UUID(int=k)),
                time_exchange=coinapi_time(when),
                time_coinapi=coinapi_time(when + timedelta(microseconds=250)),
                price=f"{30000 + (k * 7919) % 10000}.{k % 100000:05d}",
                size=f"0.{(k * 104729) % 100000000:08d}",
                taker_side="BUY" if k % 3 else "SELL",
            )
        )
    return trades


def make_klines(
    start: datetime,
    count: int,
    *,
    price: str = "0.50000000",
    step: str = "0.00010000",
    seed: int = 0,
) -> list[list]:
    """Make ``count`` 1-minute klines in Binance's 12-field shape, prices exact.

    Minute i closes at ``price + i * step``; it opens at the previous close.
    """
    base, delta = Decimal(price), Decimal(step)
    klines = []
    for i in range(count):
        open_ms = int(start.timestamp() * 1000) + i * 60_000
        close = base + delta * i
        opened = close - delta
        high = max(opened, close) + Decimal("0.00000100")
        low = min(opened, close) - Decimal("0.00000100")
        volume = Decimal(1000 + (i * 37 + seed) % 500) + Decimal("0.12345678")
        klines.append([
            open_ms, f"{opened:.8f}", f"{high:.8f}", f"{low:.8f}", f"{close:.8f}",
            f"{volume:.8f}", open_ms + 59_999, f"{volume * close:.8f}", 100 + i % 50,
            f"{volume / 2:.8f}", f"{volume * close / 2:.8f}", "0",
        ])  # fmt: skip
    return klines


def make_ticker(symbol: str, last_price: str, close_time: datetime) -> dict:
    """A 24hr ticker object as Binance sends it (numbers as strings, times as ints)."""
    close_ms = int(close_time.timestamp() * 1000)
    return {
        "symbol": symbol, "priceChange": "0.01000000", "priceChangePercent": "1.000",
        "weightedAvgPrice": last_price, "prevClosePrice": last_price, "lastPrice": last_price,
        "lastQty": "1.00000000", "bidPrice": last_price, "bidQty": "1.00000000",
        "askPrice": last_price, "askQty": "1.00000000", "openPrice": last_price,
        "highPrice": last_price, "lowPrice": last_price, "volume": "1000.00000000",
        "quoteVolume": "1000.00000000", "openTime": close_ms - 86_400_000,
        "closeTime": close_ms, "firstId": 1, "lastId": 100, "count": 100,
    }  # fmt: skip


class FakeBinance:
    """Serve ``/api/v3/klines`` and ``/api/v3/ticker/24hr`` as Binance does.

    Klines honour ``startTime``, ``endTime`` and ``limit`` (default 500, at
    most 1000); unknown symbols get ``{"code": -1121, ...}``; every answer
    carries ``X-MBX-USED-WEIGHT-1M``, growing by the endpoint's weight.
    """

    def __init__(
        self,
        httpserver,
        *,
        weight_per_request: int = 2,
        synthetic: bool = False,
        latency_s: float = 0.0,
        weight_limit: int | None = None,
    ):
        # With weight_limit, Binance's REQUEST_WEIGHT limit per calendar minute is enforced
        # (a 429 with Retry-After past it) and the header reports the minute's weight; without
        # it the header reports the weight used in all (deterministic for the tests).
        self.weight_limit = weight_limit
        self.minute_weight, self.minute = 0, -1
        self.rejected = 0
        # With synthetic=True, any symbol has a minute every minute up to now.
        self.synthetic = synthetic
        # Each answer takes latency_s; how many requests were in flight at once is kept
        # (the server must be threaded for more than one).
        self.latency_s = latency_s
        self.in_flight = self.max_in_flight = 0
        self._flight_lock = threading.Lock()
        self.klines: dict[str, list[list]] = {}
        self.tickers: dict[str, dict] = {}
        self.requests: list[dict] = []
        self.fail_on_call: dict[int, tuple] = {}
        self.used_weight = 0
        self.weight_per_request = weight_per_request
        httpserver.expect_request("/api/v3/klines").respond_with_handler(self._klines)
        httpserver.expect_request("/api/v3/ticker/24hr").respond_with_handler(self._ticker)
        httpserver.expect_request("/api/v3/exchangeInfo").respond_with_handler(self._info)
        self.halted: set[str] = set()  # symbols listed in BREAK status, not trading

    def add(self, symbol: str, klines: list[list]) -> None:
        """Add klines; one with the open time of a stored one replaces it."""
        by_open = {k[0]: k for k in self.klines.get(symbol, [])}
        by_open.update({k[0]: k for k in klines})
        self.klines[symbol] = [by_open[t] for t in sorted(by_open)]

    def _answer(self, request: Request, payload, weight: int | None = None) -> Response:
        with self._flight_lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.latency_s)
        finally:
            with self._flight_lock:
                self.in_flight -= 1
        self.requests.append({"path": request.path, **request.args})
        weight = self.weight_per_request if weight is None else weight
        with self._flight_lock:
            self.used_weight += weight
            now = time.time()
            if int(now // 60) != self.minute:
                self.minute, self.minute_weight = int(now // 60), 0
            self.minute_weight += weight
            over = self.weight_limit is not None and self.minute_weight > self.weight_limit
            reported = self.minute_weight if self.weight_limit is not None else self.used_weight
        headers = {"X-MBX-USED-WEIGHT-1M": str(reported)}
        if over:
            self.rejected += 1
            return Response(
                '{"code":-1003,"msg":"Too many requests."}',
                status=429,
                content_type="application/json",
                headers={**headers, "Retry-After": str(int(60 - now % 60) + 1)},
            )
        call = len(self.requests)
        if call in self.fail_on_call:
            status, body, *extra = self.fail_on_call[call]
            return Response(
                body,
                status=status,
                content_type="application/json",
                headers={**headers, **(extra[0] if extra else {})},
            )
        if payload is None:
            return Response(
                '{"code":-1121,"msg":"Invalid symbol."}',
                status=400,
                content_type="application/json",
                headers=headers,
            )
        return Response(json.dumps(payload), content_type="application/json", headers=headers)

    def _klines(self, request: Request) -> Response:
        symbol = request.args.get("symbol", "")
        assert request.args.get("interval") == "1m", request.args
        rows = self.klines.get(symbol)
        start = int(request.args.get("startTime", 0))
        if rows is None and self.synthetic:
            first = datetime.fromtimestamp(-(-start // 60_000) * 60, UTC)
            minutes = int((datetime.now(UTC) - first) / timedelta(minutes=1)) + 1
            rows = make_klines(first, max(0, min(minutes, 1000)), price="1.00000000")
        if rows is None:
            return self._answer(request, None)
        end = int(request.args.get("endTime", 2**62))
        limit = min(int(request.args.get("limit", 500)), 1000)
        return self._answer(request, [k for k in rows if start <= k[0] <= end][:limit])

    def _ticker(self, request: Request) -> Response:
        if "symbols" in request.args:  # ["A","B"]: one answer for them all, weighed by count
            symbols = json.loads(request.args["symbols"])
            tickers = [self._ticker_of(symbol) for symbol in symbols]
            weight = 2 if len(symbols) <= 20 else 40 if len(symbols) <= 100 else 80
            return self._answer(request, None if None in tickers else tickers, weight)
        return self._answer(request, self._ticker_of(request.args.get("symbol", "")))

    def _info(self, request: Request) -> Response:
        """exchangeInfo: every symbol held, with its quote asset (the last 4 or 3 letters)."""
        rows = [
            {
                "symbol": symbol,
                "status": "BREAK" if symbol in self.halted else "TRADING",
                "baseAsset": symbol[:-4] if symbol.endswith("USDT") else symbol[:-3],
                "quoteAsset": "USDT" if symbol.endswith("USDT") else symbol[-3:],
                "filters": [],
            }
            for symbol in sorted(self.klines)
        ]
        return self._answer(request, {"timezone": "UTC", "rateLimits": [], "symbols": rows}, 20)

    def _ticker_of(self, symbol: str) -> dict | None:
        if self.synthetic and symbol not in self.tickers:
            self.tickers[symbol] = make_ticker(symbol, "1.00000000", datetime.now(UTC))
        if symbol not in self.klines and symbol not in self.tickers:
            return None
        ticker = self.tickers.get(symbol)
        if ticker is None:  # derive one from the newest kline
            last = self.klines[symbol][-1]
            ticker = make_ticker(symbol, last[4], datetime.fromtimestamp(last[6] / 1000, UTC))
        return ticker


# -- Coinbase Exchange -----------------------------------------------------------------

TOO_MANY_BUCKETS = (
    "granularity too small for the requested time range. Count of aggregations requested "
    "exceeds 300"
)


def make_coinbase_candles(
    start: datetime,
    count: int,
    *,
    price: str = "73241.50",
    step: str = "0.37",
    skip: frozenset[int] = frozenset(),
) -> list[list[str]]:
    """``count`` minutes from ``start`` as Coinbase rows ``[time, low, high, open, close,
    volume]`` of digit strings (sent as JSON numbers); minute i in ``skip`` had no trade."""
    base, delta = Decimal(price), Decimal(step)
    rows = []
    for i in range(count):
        if i in skip:
            continue
        close = base + delta * i
        opened = close - delta
        rows.append([
            str(int(start.timestamp()) + 60 * i), str(min(opened, close) - Decimal("0.01")),
            str(max(opened, close) + Decimal("0.01")), str(opened), str(close),
            f"{Decimal(1 + i % 7) + Decimal('0.00012345')}",
        ])  # fmt: skip
    return rows


def coinbase_ticker(price: str, when: datetime, trade_id: int = 18502105) -> dict:
    """A ticker as Coinbase sends it: figures as strings, the time with microseconds."""
    return {
        "ask": price, "bid": price, "volume": "1207.50668151", "trade_id": trade_id,
        "price": price, "size": "0.00730812",
        "time": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "rfq_volume": "7.6",
    }  # fmt: skip


class FakeCoinbase:
    """Serve ``/products/{id}/candles`` and ``/products/{id}/ticker`` as Coinbase does.

    Candles: ``granularity=60`` and ``start``/``end`` in ISO 8601, both inclusive, at
    most 300 buckets (else 400), rows newest first with numbers as JSON numbers written
    with the digits given. Unknown products are 404 ``NotFound``. The public rate limit
    (``rate`` a second, bursts of ``burst``) is a token bucket: past it, 429.
    """

    def __init__(self, httpserver, *, rate: float = 10.0, burst: int = 15, synthetic: bool = False):
        # With synthetic=True, any product has a candle every minute up to now.
        self.synthetic = synthetic
        self.candles: dict[str, dict[int, list[str]]] = {}
        self.tickers: dict[str, str] = {}  # product -> the ticker's JSON text
        self.requests: list[dict] = []
        self.throttled = 0
        self.fail_on_call: dict[int, tuple[int, str]] = {}
        self.rate, self.burst = rate, burst
        self._tokens, self._at = float(burst), time.monotonic()
        httpserver.expect_request(re.compile(r"^/products/[^/]+/candles$")).respond_with_handler(
            self._candles
        )
        httpserver.expect_request(re.compile(r"^/products/[^/]+/ticker$")).respond_with_handler(
            self._ticker
        )
        httpserver.expect_request("/products").respond_with_handler(self._products)
        self.delisted: set[str] = set()

    def add(self, product: str, rows: list[list[str]]) -> None:
        """Add candle rows; one for a minute already held replaces it."""
        self.candles.setdefault(product, {}).update({int(row[0]): row for row in rows})

    def set_ticker(self, product: str, ticker: dict | str) -> None:
        self.tickers[product] = ticker if isinstance(ticker, str) else json.dumps(ticker)

    @staticmethod
    def _json(status: int, body: str) -> Response:
        return Response(body, status=status, content_type="application/json")

    def _admit(self, request: Request, product: str) -> Response | None:
        self.requests.append({"path": request.path, "product": product, **request.args})
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            self.throttled += 1
            return self._json(429, '{"message":"Public rate limit exceeded"}')
        self._tokens -= 1
        call = len(self.requests)
        if call in self.fail_on_call:
            return self._json(*self.fail_on_call[call])
        known = product in self.candles or product in self.tickers
        if not known and not self.synthetic:
            return self._json(404, '{"message":"NotFound"}')
        return None

    def _products(self, request: Request) -> Response:
        """Every product held: online, or delisted when told so."""
        self.requests.append({"path": request.path})
        rows = [
            {
                "id": product, "base_currency": product.split("-")[0],
                "quote_currency": product.split("-")[1], "quote_increment": "0.01",
                "status": "delisted" if product in self.delisted else "online",
                "trading_disabled": product in self.delisted,
            }
            for product in sorted(self.candles)
        ]  # fmt: skip
        return self._json(200, json.dumps(rows))

    def _candles(self, request: Request) -> Response:
        product = request.path.split("/")[2]
        refused = self._admit(request, product)
        if refused is not None:
            return refused
        if request.args.get("granularity") != "60":
            return self._json(400, '{"message":"Unsupported granularity"}')
        start = datetime.fromisoformat(request.args["start"]).timestamp()
        end = datetime.fromisoformat(request.args["end"]).timestamp()
        if (end - start) // 60 + 1 > 300:
            return self._json(400, json.dumps({"message": TOO_MANY_BUCKETS}))
        held = self.candles.get(product)
        if held is None:  # synthetic: a minute every minute, up to now
            first = datetime.fromtimestamp(start, UTC)
            upto = min(end, datetime.now(UTC).timestamp())
            held = {
                int(row[0]): row
                for row in make_coinbase_candles(first, max(0, int(upto - start) // 60 + 1))
            }
        rows = [held[t] for t in sorted(held, reverse=True) if start <= t <= end]
        return self._json(200, "[" + ",".join("[" + ",".join(row) + "]" for row in rows) + "]")

    def _ticker(self, request: Request) -> Response:
        product = request.path.split("/")[2]
        refused = self._admit(request, product)
        if refused is not None:
            return refused
        ticker = self.tickers.get(product)
        if ticker is None and product not in self.candles:  # synthetic
            ticker = json.dumps(coinbase_ticker("1.00", datetime.now(UTC)))
        if ticker is None:  # derive one from the newest candle
            newest = self.candles[product][max(self.candles[product])]
            when = datetime.fromtimestamp(int(newest[0]) + 59, UTC)
            ticker = json.dumps(coinbase_ticker(newest[4], when))
        return self._json(200, ticker)


# -- ECB -------------------------------------------------------------------------------

ECB_NS = "http://www.ecb.int/vocabulary/2002-08-01/eurofxref"


def ecb_days(xml_text: str) -> dict[str, dict[str, str]]:
    """Read an ECB XML file into {day: {currency: rate text}}, keeping the digits."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml_text)  # noqa: S314
    days = {}
    for cube in root.iter(f"{{{ECB_NS}}}Cube"):
        if cube.get("time"):
            days[cube.get("time")] = {c.get("currency"): c.get("rate") for c in cube}
    return days


def ecb_xml(days: dict[str, dict[str, str]]) -> bytes:
    """Render {day: {currency: rate}} as the ECB's gesmes envelope, newest day first
    (as the demo's ECB renders its files)."""
    from relay.demo import ecb

    return ecb.xml({day: rates.items() for day, rates in days.items()})


def ecb_hist_zip(days: dict[str, dict[str, str]], columns: list[str]) -> bytes:
    """Render the full-history zip: Date + columns, N/A for gaps, a trailing empty column."""
    import io
    import zipfile

    lines = ["Date," + ",".join(columns) + ","]
    for day, rates in sorted(days.items(), reverse=True):
        lines.append(day + "," + ",".join(rates.get(c, "N/A") for c in columns) + ",")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("eurofxref-hist.csv", "\n".join(lines) + "\n")
    return buffer.getvalue()


def synthetic_ecb_history(start: date, end: date, currencies: list[str]) -> dict:
    """Every weekday from start to end with a rate per currency, 4-6 significant digits."""
    days = {}
    day = start
    while day <= end:
        if day.weekday() < 5:
            n = day.toordinal()
            days[day.isoformat()] = {
                c: f"{(i + 1) * 1.5 + (n % 97) / 1000 + i / 10000:.4f}"
                for i, c in enumerate(currencies)
            }
        day += timedelta(days=1)
    return days


class FakeECB:
    """Serve the ECB's three files from bytes the test sets."""

    def __init__(self, httpserver):
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        for name in ("eurofxref-daily.xml", "eurofxref-hist-90d.xml", "eurofxref-hist.zip"):
            httpserver.expect_request(f"/{name}").respond_with_handler(self._handler(name))

    def serve_recorded(self) -> None:
        """The recorded daily and 90-day files, and a history zip made from the 90 days."""
        self.files["eurofxref-daily.xml"] = (SAMPLES / "ecb_daily.xml").read_bytes()
        self.files["eurofxref-hist-90d.xml"] = (SAMPLES / "ecb_hist90d.xml").read_bytes()
        self.files["eurofxref-hist.zip"] = ecb_hist_zip(
            ecb_days((SAMPLES / "ecb_hist90d.xml").read_text()), ["USD", "JPY", "GBP", "CHF"]
        )

    def _handler(self, name):
        def handle(request: Request) -> Response:
            self.requests.append(name)
            if name not in self.files:
                return Response("Not Found", status=404, content_type="text/plain")
            kind = "application/zip" if name.endswith(".zip") else "text/xml"
            return Response(self.files[name], content_type=kind)

        return handle


def main() -> None:
    """Serve loopback upstreams for trying relay by hand: python -m tests.upstreams."""
    import argparse
    import time as _time

    from pytest_httpserver import HTTPServer

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--coinapi-key", default="dev-coinapi-key")
    parser.add_argument("--trades-per-second", type=int, default=2)
    args = parser.parse_args()
    server = HTTPServer(host="127.0.0.1", port=args.port)
    server.start()
    FakeCoinAPI(server, key=args.coinapi_key, synthetic_per_s=args.trades_per_second)
    FakeBinance(server, synthetic=True)
    FakeECB(server).serve_recorded()
    base = server.url_for("/").rstrip("/")
    print(f"loopback upstreams on {base}: CoinAPI (key {args.coinapi_key}), Binance, ECB")
    print(
        f"  COINAPI_URL={base} COINAPI_KEY={args.coinapi_key} BINANCE_URL={base} ECB_URL={base}",
        flush=True,
    )
    try:
        while True:
            _time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()


# -- CoinMarketCap -----------------------------------------------------------------------


def cmc_listing(
    cmc_id: int,
    name: str,
    symbol: str,
    rank: int,
    price: str,
    *,
    volume: str = "1000.5",
    market_cap: str | None = None,
) -> dict:
    """One listings entry in CoinMarketCap's shape (numbers as JSON numbers)."""
    return {
        "id": cmc_id, "name": name, "symbol": symbol,
        "slug": name.lower().replace(" ", "-"), "num_market_pairs": 10,
        "date_added": "2015-01-01T00:00:00.000Z", "tags": [], "max_supply": None,
        "circulating_supply": 1000, "total_supply": 1000, "platform": None,
        "cmc_rank": rank, "last_updated": "2020-06-30T09:40:00.000Z",
        "quote": {"USD": {
            "price": Decimal(price), "volume_24h": Decimal(volume),
            "percent_change_1h": Decimal("0.1"), "percent_change_24h": Decimal("1.5"),
            "percent_change_7d": Decimal("-2.25"), "percent_change_30d": Decimal("10"),
            "market_cap": Decimal(market_cap or str(Decimal(price) * 1000)),
            "last_updated": "2020-06-30T09:40:00.000Z",
        }},
    }  # fmt: skip


def cmc_json(payload) -> str:
    """JSON with Decimals written as exact JSON numbers, as CoinMarketCap sends them."""

    exact: list[str] = []

    def mark(value):
        if isinstance(value, Decimal):
            exact.append(format(value, "f"))
            return f"__exact_{len(exact) - 1}__"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    # one pass over the text, however many numbers (5000 listings have 30,000)
    return re.sub(r'"__exact_(\d+)__"', lambda m: exact[int(m.group(1))], json.dumps(mark(payload)))


class FakeCMC:
    """Serve listings/latest and v2 info (by id) and count what was asked.

    CoinMarketCap's key header, ``X-CMC_PRO_API_KEY``, has underscores, which
    WSGI servers (werkzeug's among them) drop; so this fake is a plain
    ``http.server`` that sees headers as they were sent.
    """

    def __init__(self, key: str = "test-cmc-key"):
        import http.server
        import threading
        import urllib.parse

        self.key = key
        self.listings: list[dict] = []
        self.raw_listings: str | None = None  # a recorded body, served as it is
        self.logos: dict[int, str] = {}  # cmc id -> logo URL
        self.requests: list[dict] = []
        self.error: tuple[int, int, str] | None = None  # (http status, error_code, message)
        # /logos/<id>.png: a PNG per id, each answered after logo_latency_s
        self.logo_latency_s = 0.0
        self.logos_in_flight = self.max_logos_in_flight = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                if url.path.startswith("/logos/"):
                    return self.send(200, "image/png", fake.logo(url.path))
                args = dict(urllib.parse.parse_qsl(url.query))
                status, body = fake.answer(url.path, args, self.headers.get("X-CMC_PRO_API_KEY"))
                self.send(status, "application/json; charset=utf-8", body.encode())

            def send(self, status, content_type, data):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def _status(code=0, message=None):
        return {
            "timestamp": "2020-06-30T09:41:38.309Z", "error_code": code,
            "error_message": message, "elapsed": 10, "credit_count": 1, "notice": None,
        }  # fmt: skip

    def answer(self, path: str, args: dict, key: str | None) -> tuple[int, str]:
        self.requests.append({"path": path, **args})
        if key != self.key:
            return 401, json.dumps({"status": self._status(1001, "This API Key is invalid.")})
        if self.error:
            status, code, message = self.error
            return status, json.dumps({"status": self._status(code, message)})
        if path == "/v1/cryptocurrency/listings/latest":
            if self.raw_listings is not None:
                return 200, self.raw_listings
            start, limit = int(args.get("start", 1)), int(args.get("limit", 100))
            if not 1 <= limit <= 5000 or start < 1:
                message = 'Invalid value for "limit"'
                return 400, json.dumps({"status": self._status(400, message)})
            page = self.listings[start - 1 : start - 1 + limit]
            return 200, cmc_json({"status": self._status(), "data": page})
        if path == "/v2/cryptocurrency/info":
            ids = [int(i) for i in args["id"].split(",")]
            data = {
                str(i): {"id": i, "name": f"coin {i}", "logo": self.logos[i]}
                for i in ids
                if i in self.logos
            }
            return 200, json.dumps({"status": self._status(), "data": data})
        return 404, json.dumps({"status": self._status(404, "Not found")})

    def logo_url(self, cmc_id: int) -> str:
        return f"{self.url}/logos/{cmc_id}.png"

    def logo(self, path: str) -> bytes:
        """One logo, after logo_latency_s, counting how many are asked for at once."""
        with self._lock:
            self.logos_in_flight += 1
            self.max_logos_in_flight = max(self.max_logos_in_flight, self.logos_in_flight)
        try:
            time.sleep(self.logo_latency_s)
            return b"\x89PNG\r\n\x1a\n" + path.encode() * 4
        finally:
            with self._lock:
                self.logos_in_flight -= 1


def png(seed: int) -> bytes:
    """A tiny distinct PNG-looking body (the relay stores bytes, it never decodes them)."""
    return b"\x89PNG\r\n\x1a\n" + bytes([seed]) * 32


def solid_png(rgb: tuple[int, int, int], size: int = 32) -> bytes:
    """A real, decodable PNG of one colour (browsers draw it; the relay stores its bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@dataclass(frozen=True)
class Fake:
    """A source's loopback upstream in the tests, and a symbol it can be asked for."""

    upstream: type
    symbol: str | None  # None: the source takes no symbols


# Every source in relay.sources.registry has one (tests/test_registry.py checks).
FAKES = {
    "coinapi": Fake(FakeCoinAPI, "BTC"),
    "binance": Fake(FakeBinance, "BTCUSDT"),
    "cmc": Fake(FakeCMC, None),
    "ecb": Fake(FakeECB, None),
    "coinbase": Fake(FakeCoinbase, "BTC-USD"),
}
