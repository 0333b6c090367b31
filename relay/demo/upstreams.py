"""The demo's upstreams: one loopback HTTP server answering as CoinAPI, Binance, Coinbase,
the ECB and CoinMarketCap do (their paths, parameters, keys and wire formats).

A plain ``http.server``: CoinMarketCap's key header, ``X-CMC_PRO_API_KEY``, has
underscores, which WSGI servers drop.
"""

from __future__ import annotations

import http.server
import json
import logging
import threading
import urllib.parse
from datetime import UTC, datetime
from decimal import Decimal

from relay.demo import ecb
from relay.demo.coins import COINS
from relay.demo.logos import disc_png
from relay.demo.markets import BINANCE, COINAPI, COINBASE, Markets

log = logging.getLogger(__name__)

COINAPI_KEY = "demo-coinapi-key"
CMC_KEY = "demo-cmc-key"
ECB_PATH = "/stats/eurofxref"
LOGO_PATH = "/static/img/coins/64x64/"
COLOURS = {coin.cmc_id: coin.colour for coin in COINS}


def dumps(value) -> str:
    """JSON with every Decimal written as a JSON number with exactly its digits."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


def _iso(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class Upstreams:
    """Serve every source's upstream on 127.0.0.1 from a thread until ``stop()``."""

    def __init__(self, markets: Markets, files: ecb.ECBFiles, port: int = 0):
        self.markets = markets
        self.ecb = files
        upstreams = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                args = dict(urllib.parse.parse_qsl(url.query))
                try:
                    status, kind, body = upstreams.answer(url.path, args, self.headers)
                except (KeyError, ValueError) as exc:
                    status, kind = 400, "application/json"
                    body = json.dumps({"error": f"bad request: {exc}"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                if url.path.startswith("/api/v3/"):
                    self.send_header("X-MBX-USED-WEIGHT-1M", "2")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

    def start(self) -> Upstreams:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def environment(self) -> dict[str, str]:
        """The relay's settings that point every source here."""
        return {
            "COINAPI_URL": self.url,
            "COINAPI_KEY": COINAPI_KEY,
            "COINAPI_SYMBOLS": ",".join(COINAPI),
            "COINAPI_BACKFILL_HOURS": "2",
            "BINANCE_URL": self.url,
            "BINANCE_SYMBOLS": ",".join(BINANCE),
            "BINANCE_BACKFILL_HOURS": "48",
            "COINBASE_URL": self.url,
            "COINBASE_PRODUCTS": ",".join(COINBASE),
            "COINBASE_BACKFILL_HOURS": "48",
            "ECB_URL": self.url + ECB_PATH,
            "CMC_URL": self.url,
            "CMC_API_KEY": CMC_KEY,
            "CMC_LIMIT": str(len(COINS)),
            "CMC_LOGO_HOSTS": f"127.0.0.1:{self.port}",
        }

    # -- routing ------------------------------------------------------------------------------

    def answer(self, path: str, args: dict, headers) -> tuple[int, str, bytes]:
        if path.startswith("/v1/trades/") and path.endswith("/history"):
            return self._coinapi(path.split("/")[3], args, headers)
        if path.startswith("/api/v3/"):
            return self._binance(path.removeprefix("/api/v3/"), args)
        if path == "/products" or path.startswith("/products/"):
            return self._coinbase(path.split("/")[2:], args)
        if path.startswith(ECB_PATH + "/"):
            return self._ecb(path.removeprefix(ECB_PATH + "/"))
        if path.startswith(LOGO_PATH) and path.endswith(".png"):
            cmc_id = int(path.removeprefix(LOGO_PATH).removesuffix(".png"))
            if cmc_id in COLOURS:
                return 200, "image/png", disc_png(COLOURS[cmc_id])
        if path.startswith(("/v1/cryptocurrency/", "/v2/cryptocurrency/")):
            return self._cmc(path, args, headers)
        return 404, "text/plain", b"Not Found"

    @staticmethod
    def _json(status: int, payload) -> tuple[int, str, bytes]:
        return status, "application/json; charset=utf-8", dumps(payload).encode()

    def _coinapi(self, symbol_id: str, args: dict, headers) -> tuple[int, str, bytes]:
        if headers.get("X-CoinAPI-Key") != COINAPI_KEY:
            return self._json(401, {"error": "Invalid API key"})
        parts = symbol_id.split("_")
        if len(parts) != 4 or parts[2] not in COINAPI:
            return self._json(550, {"error": "You requested specific single item that we don't "
                                             "have at this moment."})  # fmt: skip
        limit = min(int(args.get("limit", 100)), 100_000)
        return self._json(200, self.markets.trades(symbol_id, _iso(args["time_start"]), limit))

    def _binance(self, route: str, args: dict) -> tuple[int, str, bytes]:
        invalid = {"code": -1121, "msg": "Invalid symbol."}
        if route == "exchangeInfo":
            return self._json(200, self.markets.exchange_info())
        if route == "klines":
            symbol = args.get("symbol", "")
            if symbol not in BINANCE:
                return self._json(400, invalid)
            end = int(args["endTime"]) if "endTime" in args else None
            limit = min(int(args.get("limit", 500)), 1000)
            rows = self.markets.klines(symbol, int(args.get("startTime", 0)), end, limit)
            return self._json(200, rows)
        if route == "ticker/24hr":
            if "symbols" in args:
                symbols = json.loads(args["symbols"])
                if any(symbol not in BINANCE for symbol in symbols):
                    return self._json(400, invalid)
                return self._json(200, [self.markets.ticker(symbol) for symbol in symbols])
            if args.get("symbol") not in BINANCE:
                return self._json(400, invalid)
            return self._json(200, self.markets.ticker(args["symbol"]))
        return self._json(404, {"code": -1, "msg": "Not found."})

    def _coinbase(self, parts: list[str], args: dict) -> tuple[int, str, bytes]:
        if not parts:
            return self._json(200, self.markets.coinbase_products())
        product = parts[0]
        if product not in COINBASE:
            return self._json(404, {"message": "NotFound"})
        if parts[1:] == ["ticker"]:
            return self._json(200, self.markets.coinbase_ticker(product))
        if parts[1:] == ["candles"]:
            if args.get("granularity") != "60":
                return self._json(400, {"message": "Unsupported granularity"})
            start, end = _iso(args["start"]), _iso(args["end"])
            if (end - start).total_seconds() // 60 + 1 > 300:
                return self._json(400, {"message": "granularity too small for the requested "
                                                   "time range. Count of aggregations requested "
                                                   "exceeds 300"})  # fmt: skip
            return self._json(200, self.markets.coinbase_candles(product, start, end))
        return self._json(404, {"message": "NotFound"})

    def _ecb(self, name: str) -> tuple[int, str, bytes]:
        files = {
            "eurofxref-daily.xml": ("text/xml", self.ecb.daily),
            "eurofxref-hist-90d.xml": ("text/xml", self.ecb.hist_90d),
            "eurofxref-hist.zip": ("application/zip", self.ecb.zip),
        }
        if name not in files:
            return 404, "text/plain", b"Not Found"
        kind, body = files[name]
        return 200, kind, body

    def _cmc(self, path: str, args: dict, headers) -> tuple[int, str, bytes]:
        now = datetime.now(UTC)
        status = {
            "timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
            "error_code": 0, "error_message": None, "elapsed": 12, "credit_count": 1,
            "notice": None,
        }  # fmt: skip
        if headers.get("X-CMC_PRO_API_KEY") != CMC_KEY:
            error = {**status, "error_code": 1001, "error_message": "This API Key is invalid."}
            return self._json(401, {"status": error})
        if path == "/v1/cryptocurrency/listings/latest":
            start, limit = int(args.get("start", 1)), int(args.get("limit", 100))
            if not 1 <= limit <= 5000 or start < 1:
                error = {**status, "error_code": 400, "error_message": 'Invalid value for "limit"'}
                return self._json(400, {"status": error})
            return self._json(200, {"status": status, "data": self.markets.listings(start, limit)})
        if path == "/v2/cryptocurrency/info":
            wanted = {int(i) for i in args.get("id", "").split(",") if i.strip()}
            data = {
                str(coin.cmc_id): {
                    "id": coin.cmc_id, "name": coin.name, "symbol": coin.symbol,
                    "slug": coin.name.lower().replace(" ", "-"),
                    "logo": f"{self.url}{LOGO_PATH}{coin.cmc_id}.png",
                }
                for coin in COINS
                if coin.cmc_id in wanted
            }  # fmt: skip
            return self._json(200, {"status": status, "data": data})
        return self._json(
            404, {"status": {**status, "error_code": 404, "error_message": "Not found"}}
        )
