"""Seeded random walks: each coin's price minute by minute, ending near its real level now.

A coin's log-price takes one Gaussian step an hour from 31 days ago, then one a minute
for the last 3 days (its daily volatility spread over 24 hours or 1440 minutes; the old
days only feed the 7- and 30-day changes), and the walk is scaled so that the minute the demo
started is at the coin's price in relay/demo/coins.py. Minutes after that are walked
on as they are asked for. A stablecoin stays within a few hundredths of a percent of
its peg. Everything else a minute needs (highs, lows, volumes, trades) comes from
``uniform(key, minute, salt)``, a hash: the same question always gets the same answer.
"""

from __future__ import annotations

import math
import random
import threading
import zlib
from array import array
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from relay.demo.coins import Coin

HISTORY = timedelta(days=31)
FINE = timedelta(days=3)  # minute by minute over the last three days, hour by hour before
_MASK = (1 << 64) - 1


def minute_of(when: datetime) -> int:
    """Minutes since the Unix epoch, of the minute ``when`` falls in."""
    return int(when.timestamp()) // 60


def key_of(text: str) -> int:
    """A stable number for a name (Python's own hash() changes every run)."""
    return zlib.crc32(text.encode())


def uniform(key: int, number: int, salt: int = 0) -> float:
    """A uniform number in [0, 1) from (key, number, salt): splitmix64 over their mix."""
    z = (key * 0x9E3779B97F4A7C15 + number * 0xBF58476D1CE4E5B9 + salt * 0x94D049BB133111EB) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    z ^= z >> 31
    return (z >> 11) / float(1 << 53)


class Walks:
    """Every coin's price at any minute from 31 days before ``now`` on."""

    def __init__(self, coins: Iterable[Coin], *, now: datetime, seed: int = 2026):
        self.seed = seed
        self.start = minute_of(now)  # the minute whose price is each coin's table price
        self.origin = minute_of(now - HISTORY)
        self.fine_origin = minute_of(now - FINE)
        self._lock = threading.Lock()
        self._coins = {coin.symbol: coin for coin in coins}
        self._hours: dict[str, array] = {}
        self._steps: dict[str, array] = {}  # minutes from fine_origin
        self._rngs: dict[str, random.Random] = {}
        self._level: dict[str, float] = {}
        hours = -(-(self.fine_origin - self.origin) // 60)
        for symbol, coin in self._coins.items():
            rng = self._rngs[symbol] = random.Random(f"{seed}:{symbol}")
            sigma = self._sigma(coin) * math.sqrt(60)
            coarse, level = array("d"), 0.0
            for _ in range(hours):
                if coin.stable:
                    coarse.append(rng.gauss(0.0, 0.00015))
                else:
                    level += rng.gauss(0.0, sigma)
                    coarse.append(level)
            self._hours[symbol] = coarse
            self._steps[symbol] = array("d")
            self._extend(symbol, self.start)
            # the table's price, give or take a percent: not a round figure at start
            offset = rng.gauss(0.0, 0.01)
            self._level[symbol] = 0.0 if coin.stable else self._steps[symbol][-1] + offset

    def _sigma(self, coin: Coin) -> float:
        return float(coin.volatility) / math.sqrt(1440)

    def _extend(self, symbol: str, upto: int) -> None:
        """Walk ``symbol`` on to minute ``upto`` (under the lock, or before any thread)."""
        coin, steps, rng = self._coins[symbol], self._steps[symbol], self._rngs[symbol]
        gauss = rng.gauss
        if coin.stable:  # no walk: small noise around the peg
            while self.fine_origin + len(steps) <= upto:
                steps.append(gauss(0.0, 0.00015))
            return
        sigma = self._sigma(coin)
        level = steps[-1] if steps else (self._hours[symbol][-1] if self._hours[symbol] else 0.0)
        while self.fine_origin + len(steps) <= upto:
            level += gauss(0.0, sigma)
            steps.append(level)

    def price(self, symbol: str, minute: int) -> float:
        """The coin's USD price at ``minute`` (its close); the first minute held before that."""
        if minute < self.fine_origin:
            coarse = self._hours[symbol]
            log = coarse[min(len(coarse) - 1, max(0, minute - self.origin) // 60)]
        else:
            steps = self._steps[symbol]
            index = minute - self.fine_origin
            if index >= len(steps):
                with self._lock:
                    self._extend(symbol, minute)
            log = steps[index]
        return float(self._coins[symbol].price) * math.exp(log - self._level[symbol])

    def symbols(self) -> list[str]:
        return list(self._coins)

    def now_minute(self) -> int:
        return minute_of(datetime.now(UTC))
