"""What each demo upstream answers, in its own wire format, from the walks.

Every figure is derived from a coin's walk (relay/demo/walks.py) and hashes of the
minute, so two requests for the same minute get the same answer, the newest minute is
the present one, and Binance's and Coinbase's BTC move together (as two exchanges do).
Numbers are ``Decimal`` here, written as the upstream writes them by relay/demo/wire.py.
"""

from __future__ import annotations

import functools
import math
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from relay.demo.coins import BY_SYMBOL, COINS
from relay.demo.walks import Walks, key_of, minute_of, uniform

# Binance pairs: symbol -> (base coin, quote coin or None for USDT, price decimals, qty decimals)
BINANCE = {
    "BTCUSDT": ("BTC", None, 2, 5),
    "ETHUSDT": ("ETH", None, 2, 4),
    "SOLUSDT": ("SOL", None, 2, 3),
    "XRPUSDT": ("XRP", None, 4, 1),
    "ADAUSDT": ("ADA", None, 4, 1),
    "ADABTC": ("ADA", "BTC", 8, 0),
}
# Coinbase products: product -> (base coin, price decimals)
COINBASE = {"BTC-USD": ("BTC", 2), "ETH-USD": ("ETH", 2), "SOL-USD": ("SOL", 2)}
# CoinAPI's trades come from Bitstamp's books: asset -> price decimals
COINAPI = {"BTC": 2, "ETH": 2, "SOL": 2, "XRP": 5}
NAMESPACE = uuid.UUID("6f0d5a56-2b7e-4c1e-9a55-2f7c0d1e9b11")  # the demo's trade ids


def fixed(value: float, places: int) -> Decimal:
    """``value`` with ``places`` decimals (ROUND_HALF_EVEN), as an exact Decimal."""
    return Decimal(repr(value)).quantize(Decimal(1).scaleb(-places))


def significant(value: float, digits: int = 10) -> Decimal:
    """``value`` to ``digits`` significant digits."""
    if value == 0:
        return Decimal(0)
    return fixed(value, max(0, digits - 1 - math.floor(math.log10(abs(value)))))


def plain(value: float, digits: int = 15) -> Decimal:
    """As CoinMarketCap writes a float: its significant digits, no trailing zeros."""
    return significant(value, digits).normalize()


def millis(minute: int) -> int:
    return minute * 60_000


class Markets:
    """The demo's exchanges, CoinAPI's trades and CoinMarketCap's listings."""

    def __init__(self, walks: Walks):
        self.walks = walks

    # -- Binance ----------------------------------------------------------------------------

    def pair_price(self, symbol: str, minute: int) -> float:
        base, quote, _, _ = BINANCE[symbol]
        price = self.walks.price(base, minute)
        if quote is not None:
            return price / self.walks.price(quote, minute)
        # an exchange's own small premium, moving minute by minute
        return price * (1 + (uniform(key_of(symbol), minute, 7) - 0.5) * 0.0004)

    @functools.lru_cache(maxsize=65536)  # noqa: B019 (one Markets per demo, kept all along)
    def kline(self, symbol: str, minute: int) -> tuple:
        """(open, high, low, close, volume, quote volume, trades, taker base, taker quote)."""
        base, _, places, qty_places = BINANCE[symbol]
        key = key_of(symbol)
        opened = fixed(self.pair_price(symbol, minute - 1), places)
        close = fixed(self.pair_price(symbol, minute), places)
        spread = float(BY_SYMBOL[base].volatility) / 12
        high = max(opened, close) * Decimal(repr(1 + uniform(key, minute, 1) * spread))
        low = min(opened, close) * Decimal(repr(1 - uniform(key, minute, 2) * spread))
        coin = BY_SYMBOL[base]
        daily_usd = float(coin.price * coin.supply) * 0.004  # this pair's share of the volume
        usd_price = self.walks.price(base, minute)
        volume = fixed(
            daily_usd / 1440 / usd_price * (0.3 + 1.4 * uniform(key, minute, 3)), qty_places
        )
        quote_volume = fixed(float(volume) * float(close), 8)
        trades = 20 + int(uniform(key, minute, 4) * 400)
        taker = fixed(float(volume) * (0.3 + 0.4 * uniform(key, minute, 5)), qty_places)
        return (
            opened,
            fixed(float(high), places),
            fixed(float(low), places),
            close,
            volume,
            quote_volume,
            trades,
            taker,
            fixed(float(taker) * float(close), 8),
        )

    def klines(self, symbol: str, start_ms: int, end_ms: int | None, limit: int) -> list[list]:
        """Binance's 12-field rows for minutes opening in [start, end], oldest first."""
        now = self.walks.now_minute()
        first = max(-(-start_ms // 60_000), self.walks.origin + 1)
        last = now if end_ms is None else min(now, end_ms // 60_000)
        rows = []
        for minute in range(first, min(last, first + limit - 1) + 1):
            o, h, low, c, v, qv, n, tb, tq = self.kline(symbol, minute)
            rows.append([
                millis(minute), f"{o:.8f}", f"{h:.8f}", f"{low:.8f}", f"{c:.8f}", f"{v:.8f}",
                millis(minute) + 59_999, f"{qv:.8f}", n, f"{tb:.8f}", f"{tq:.8f}", "0",
            ])  # fmt: skip
        return rows

    def ticker(self, symbol: str) -> dict:
        """The 24-hour rolling ticker, as Binance writes it (figures as strings)."""
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        now = now_ms // 60_000
        window = [self.kline(symbol, minute) for minute in range(now - 1439, now + 1)]
        opened, last = window[0][0], window[-1][3]
        volume = sum(k[4] for k in window)
        quote_volume = sum(k[5] for k in window)
        change = last - opened
        count = sum(k[6] for k in window)
        return {
            "symbol": symbol,
            "priceChange": f"{change:.8f}",
            "priceChangePercent": f"{change / opened * 100:.3f}",
            "weightedAvgPrice": f"{quote_volume / volume if volume else last:.8f}",
            "prevClosePrice": f"{self.kline(symbol, now - 1440)[3]:.8f}",
            "lastPrice": f"{last:.8f}",
            "lastQty": f"{window[-1][4] / 50:.8f}",
            "bidPrice": f"{last:.8f}",
            "bidQty": "1.00000000",
            "askPrice": f"{last:.8f}",
            "askQty": "1.00000000",
            "openPrice": f"{opened:.8f}",
            "highPrice": f"{max(k[1] for k in window):.8f}",
            "lowPrice": f"{min(k[2] for k in window):.8f}",
            "volume": f"{volume:.8f}",
            "quoteVolume": f"{quote_volume:.8f}",
            "openTime": now_ms - 86_400_000,
            "closeTime": now_ms,
            "firstId": 1_000_000 + (now - 1439) * 300,
            "lastId": 1_000_000 + (now - 1439) * 300 + count - 1,
            "count": count,
        }

    def exchange_info(self) -> dict:
        return {
            "timezone": "UTC",
            "serverTime": int(datetime.now(UTC).timestamp() * 1000),
            "rateLimits": [],
            "symbols": [
                {
                    "symbol": symbol,
                    "status": "TRADING",
                    "baseAsset": base,
                    "quoteAsset": quote or "USDT",
                    "filters": [],
                }
                for symbol, (base, quote, _, _) in BINANCE.items()
            ],
        }

    # -- Coinbase ---------------------------------------------------------------------------

    def coinbase_candles(self, product: str, start: datetime, end: datetime) -> list[list]:
        """[time, low, high, open, close, volume] rows for minutes in [start, end], newest first."""
        base, places = COINBASE[product]
        key = key_of(product)
        first = max(-(-int(start.timestamp()) // 60), self.walks.origin + 1)
        last = min(int(end.timestamp()) // 60, self.walks.now_minute())
        rows = []
        for minute in range(last, first - 1, -1):
            price = self.walks.price
            opened, close = (
                fixed(price(base, minute - 1), places),
                fixed(price(base, minute), places),
            )
            spread = float(BY_SYMBOL[base].volatility) / 12
            high = fixed(float(max(opened, close)) * (1 + uniform(key, minute, 1) * spread), places)
            low = fixed(float(min(opened, close)) * (1 - uniform(key, minute, 2) * spread), places)
            coin = BY_SYMBOL[base]
            daily = float(coin.price * coin.supply) * 0.002 / price(base, minute)
            volume = fixed(daily / 1440 * (0.3 + 1.4 * uniform(key, minute, 3)), 8)
            rows.append([Decimal(minute * 60), low, high, opened, close, volume])
        return rows

    def coinbase_ticker(self, product: str) -> dict:
        base, places = COINBASE[product]
        now = datetime.now(UTC)
        minute = minute_of(now)
        price = fixed(self.walks.price(base, minute), places)
        step = Decimal(1).scaleb(-places)
        return {
            "ask": str(price + step),
            "bid": str(price),
            "volume": str(sum(row[5] for row in self.coinbase_candles(
                product, now - timedelta(hours=24), now))),
            "trade_id": int(now.timestamp()) * 3,
            "price": str(price),
            "size": str(fixed(0.0001 + uniform(key_of(product), minute, 9) * 0.5, 8)),
            "time": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }  # fmt: skip

    def coinbase_products(self) -> list[dict]:
        return [
            {
                "id": product,
                "base_currency": base,
                "quote_currency": "USD",
                "quote_increment": str(Decimal(1).scaleb(-places)),
                "status": "online",
                "trading_disabled": False,
            }
            for product, (base, places) in COINBASE.items()
        ]

    # -- CoinAPI ----------------------------------------------------------------------------

    def trades(self, symbol_id: str, start: datetime, limit: int) -> list[dict]:
        """Bitstamp's trades of one asset from ``start`` (inclusive) to now, at most ``limit``.

        Each second has none, one or two trades; ids are unique across every symbol.
        """
        asset = symbol_id.split("_")[2]
        places, key = COINAPI[asset], key_of(symbol_id)
        now = datetime.now(UTC)
        second = max(int(start.timestamp()), self.walks.origin * 60)
        end = int(now.timestamp())
        found: list[dict] = []
        while second <= end and len(found) < limit:
            roll = uniform(key, second, 1)
            count = 0 if roll < 0.55 else 1 if roll < 0.9 else 2
            offsets = sorted(int(uniform(key, second, 10 + i) * 1_000_000) for i in range(count))
            for i, micros in enumerate(offsets):
                when = datetime.fromtimestamp(second, UTC) + timedelta(microseconds=micros)
                if when < start or when > now or len(found) >= limit:
                    continue
                minute, into = divmod(second, 60)
                before, after = (self.walks.price(asset, minute + d) for d in (-1, 0))
                price = before + (after - before) * (into / 60)
                price *= 1 + (uniform(key, second, 20 + i) - 0.5) * 0.0004
                found.append({
                    "symbol_id": symbol_id,
                    "time_exchange": coinapi_time(when),
                    "time_coinapi": coinapi_time(when + timedelta(microseconds=84_000)),
                    "uuid": str(uuid.uuid5(NAMESPACE, f"{symbol_id}/{second}/{i}")),
                    "price": fixed(price, places),
                    "size": fixed(0.00001 + uniform(key, second, 30 + i) ** 3 * 2, 8),
                    "taker_side": "BUY" if uniform(key, second, 40 + i) < 0.5 else "SELL",
                })  # fmt: skip
            second += 1
        return found

    # -- CoinMarketCap ----------------------------------------------------------------------

    def listings(self, start: int, limit: int) -> list[dict]:
        """The top coins by market cap now, CoinMarketCap's fields, ranks from 1."""
        now = datetime.now(UTC)
        minute = minute_of(now)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
        entries = []
        for coin in COINS:
            price = self.walks.price(coin.symbol, minute)

            def change(minutes: int, coin=coin, price=price) -> Decimal:
                then = self.walks.price(coin.symbol, minute - minutes)
                return plain((price / then - 1) * 100, 8)

            cap = price * float(coin.supply)
            day = minute // 1440
            key = key_of(coin.symbol)
            share = 0.01 + 0.09 * uniform(key, day, 11)
            entries.append((cap, {
                "id": coin.cmc_id, "name": coin.name, "symbol": coin.symbol,
                "slug": coin.name.lower().replace(" ", "-"),
                "num_market_pairs": 100 + coin.cmc_id % 900,
                "date_added": "2013-04-28T00:00:00.000Z", "tags": [], "max_supply": None,
                "circulating_supply": coin.supply, "total_supply": coin.supply, "platform": None,
                "cmc_rank": 0, "last_updated": stamp,
                "quote": {"USD": {
                    "price": plain(price, 13),
                    "volume_24h": plain(cap * share),
                    "volume_change_24h": plain((uniform(key, day, 12) - 0.5) * 40, 6),
                    "percent_change_1h": change(60),
                    "percent_change_24h": change(1440),
                    "percent_change_7d": change(7 * 1440),
                    "percent_change_30d": change(30 * 1440),
                    "market_cap": plain(cap),
                    "fully_diluted_market_cap": plain(cap),
                    "last_updated": stamp,
                }},
            }))  # fmt: skip
        entries.sort(key=lambda entry: entry[0], reverse=True)
        ranked = []
        for rank, (_, entry) in enumerate(entries, start=1):
            entry["cmc_rank"] = rank
            ranked.append(entry)
        return ranked[start - 1 : start - 1 + limit]


def coinapi_time(when: datetime) -> str:
    """CoinAPI's time text: seven fractional digits and Z."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
