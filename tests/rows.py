"""Rows written straight into the tables, for tests that need a little of everything."""

from __future__ import annotations

import hashlib

from relay import rollups
from relay.sources.binance import MARKET
from tests.upstreams import png

LOGO = png(7)


def a_little_of_everything(conn) -> None:
    """One CoinAPI trade of BTC, two hours of BTCUSDT minutes, USD and JPY on 2018-06-01,
    and one coin, B, with a close on 2020-01-01 and a logo."""
    conn.execute("INSERT INTO symbol (symbol_id) VALUES ('BITSTAMP_SPOT_BTC_USD')")
    conn.execute(
        "INSERT INTO symbol_data VALUES (gen_random_uuid(), 1, '2020-01-01T00:00Z', "
        "'2020-01-01T00:00Z', 7000, 1, 'BUY')"
    )
    conn.execute(
        "INSERT INTO binance_candle SELECT 'BTCUSDT', t, t + interval '59.999 s', 1, 2, 0.5, 1.5, "
        "10, 15, 3, 5, 7, t FROM generate_series(timestamptz '2020-01-01', "
        "timestamptz '2020-01-01 02:00', interval '1 minute') AS t"
    )
    rollups.rebuild(conn, MARKET, "BTCUSDT")
    conn.execute(
        "INSERT INTO ecb_rate VALUES ('2018-06-01', 'USD', 1.17), ('2018-06-01', 'JPY', 128.1)"
    )
    logo_id = conn.execute(
        "INSERT INTO logo (sha256, content_type, data) VALUES (%s, 'image/png', %s) RETURNING id",
        (hashlib.sha256(LOGO).digest(), LOGO),
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO coin (cmc_id, name, symbol, slug, rank, logo_id) "
        "VALUES (1, 'B', 'B', 'b', 1, %s)",
        (logo_id,),
    )
    conn.execute("INSERT INTO coin_daily (coin_id, day, close) VALUES (1, '2020-01-01', 7000)")
