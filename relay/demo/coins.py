"""The demo's coins: the top 50 by market capitalization, with their real names and symbols.

Each row is (CoinMarketCap id, name, symbol, approximate USD price, approximate
circulating supply, daily volatility, logo colour). Prices and supplies are round
figures of late 2025, enough for figures at real levels; the demo's prices then move
from these by seeded random walks. Stablecoins hold their peg.
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple


class Coin(NamedTuple):
    cmc_id: int
    name: str
    symbol: str
    price: Decimal  # USD, about what it traded at
    supply: Decimal  # coins in circulation, about
    volatility: Decimal  # typical daily move, as a fraction (0 for a stablecoin's peg)
    colour: tuple[int, int, int]

    @property
    def stable(self) -> bool:
        return self.volatility == 0


def _coin(cmc_id, name, symbol, price, supply, volatility, colour) -> Coin:
    return Coin(cmc_id, name, symbol, Decimal(price), Decimal(supply), Decimal(volatility), colour)


COINS: tuple[Coin, ...] = (
    _coin(1, "Bitcoin", "BTC", "90000", "19960000", "0.025", (247, 147, 26)),
    _coin(1027, "Ethereum", "ETH", "3000", "120700000", "0.035", (98, 126, 234)),
    _coin(825, "Tether USDt", "USDT", "1", "185000000000", "0", (38, 161, 123)),
    _coin(52, "XRP", "XRP", "2.1", "60300000000", "0.045", (35, 41, 47)),
    _coin(1839, "BNB", "BNB", "880", "137700000", "0.03", (243, 186, 47)),
    _coin(5426, "Solana", "SOL", "135", "560000000", "0.045", (153, 69, 255)),
    _coin(3408, "USDC", "USDC", "1", "76000000000", "0", (39, 117, 202)),
    _coin(1958, "TRON", "TRX", "0.28", "94700000000", "0.025", (235, 0, 41)),
    _coin(74, "Dogecoin", "DOGE", "0.15", "151500000000", "0.055", (194, 166, 51)),
    _coin(2010, "Cardano", "ADA", "0.42", "36600000000", "0.05", (0, 51, 173)),
    _coin(1975, "Chainlink", "LINK", "13.5", "697000000", "0.05", (42, 90, 218)),
    _coin(1831, "Bitcoin Cash", "BCH", "540", "19960000", "0.045", (141, 193, 81)),
    _coin(512, "Stellar", "XLM", "0.24", "32300000000", "0.045", (20, 20, 20)),
    _coin(5805, "Avalanche", "AVAX", "13.8", "429000000", "0.055", (232, 65, 66)),
    _coin(2, "Litecoin", "LTC", "83", "76600000", "0.045", (52, 93, 157)),
    _coin(4642, "Hedera", "HBAR", "0.14", "42500000000", "0.055", (34, 34, 34)),
    _coin(328, "Monero", "XMR", "390", "18450000", "0.04", (255, 102, 0)),
    _coin(5994, "Shiba Inu", "SHIB", "0.0000085", "589250000000000", "0.05", (226, 53, 37)),
    _coin(4943, "Dai", "DAI", "1", "5300000000", "0", (245, 172, 55)),
    _coin(11419, "Toncoin", "TON", "1.6", "2540000000", "0.045", (0, 136, 204)),
    _coin(6636, "Polkadot", "DOT", "2.2", "1630000000", "0.055", (230, 0, 122)),
    _coin(7083, "Uniswap", "UNI", "6", "630000000", "0.055", (255, 0, 122)),
    _coin(1321, "Ethereum Classic", "ETC", "13", "154000000", "0.045", (50, 143, 57)),
    _coin(6535, "NEAR Protocol", "NEAR", "1.9", "1280000000", "0.06", (0, 0, 0)),
    _coin(24478, "Pepe", "PEPE", "0.0000045", "420690000000000", "0.07", (61, 145, 59)),
    _coin(21794, "Aptos", "APT", "2.2", "720000000", "0.06", (6, 20, 32)),
    _coin(8916, "Internet Computer", "ICP", "3.5", "540000000", "0.06", (41, 171, 226)),
    _coin(7278, "Aave", "AAVE", "180", "15200000", "0.055", (182, 80, 158)),
    _coin(20947, "Sui", "SUI", "1.6", "3640000000", "0.065", (77, 162, 255)),
    _coin(3635, "Cronos", "CRO", "0.1", "36000000000", "0.04", (0, 45, 116)),
    _coin(3957, "UNUS SED LEO", "LEO", "9", "922000000", "0.01", (30, 30, 30)),
    _coin(2280, "Filecoin", "FIL", "1.5", "700000000", "0.06", (0, 144, 255)),
    _coin(3794, "Cosmos", "ATOM", "2.4", "490000000", "0.055", (46, 49, 72)),
    _coin(11841, "Arbitrum", "ARB", "0.22", "5400000000", "0.065", (40, 160, 240)),
    _coin(11840, "Optimism", "OP", "0.32", "1900000000", "0.065", (255, 4, 32)),
    _coin(3077, "VeChain", "VET", "0.013", "86000000000", "0.055", (21, 189, 255)),
    _coin(4030, "Algorand", "ALGO", "0.14", "8800000000", "0.055", (0, 0, 0)),
    _coin(20396, "Kaspa", "KAS", "0.05", "26800000000", "0.06", (112, 199, 186)),
    _coin(3155, "Quant", "QNT", "80", "14500000", "0.045", (30, 30, 30)),
    _coin(7226, "Injective", "INJ", "6", "100000000", "0.065", (0, 242, 254)),
    _coin(6719, "The Graph", "GRT", "0.05", "10500000000", "0.06", (103, 77, 228)),
    _coin(4847, "Stacks", "STX", "0.3", "1780000000", "0.065", (85, 70, 255)),
    _coin(5690, "Render", "RENDER", "1.6", "518000000", "0.07", (207, 25, 25)),
    _coin(10603, "Immutable", "IMX", "0.3", "1900000000", "0.065", (23, 182, 226)),
    _coin(2011, "Tezos", "XTZ", "0.5", "1050000000", "0.05", (44, 125, 247)),
    _coin(2416, "Theta Network", "THETA", "0.35", "1000000000", "0.06", (41, 182, 175)),
    _coin(6210, "The Sandbox", "SAND", "0.15", "2500000000", "0.06", (0, 173, 239)),
    _coin(1966, "Decentraland", "MANA", "0.16", "1950000000", "0.06", (255, 45, 85)),
    _coin(6783, "Axie Infinity", "AXS", "1.2", "165000000", "0.065", (0, 85, 213)),
    _coin(4558, "Flow", "FLOW", "0.25", "1600000000", "0.06", (0, 239, 139)),
)

BY_SYMBOL = {coin.symbol: coin for coin in COINS}
