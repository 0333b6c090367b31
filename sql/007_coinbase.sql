-- Coinbase Exchange: 1-minute candles and the latest ticker per product.

-- One row per product and minute (Coinbase sends no row for a minute without trades).
-- The still-open minute is updated in place by later runs. Prices and volumes keep
-- every digit Coinbase sent.
CREATE TABLE coinbase_candle (
    symbol     text NOT NULL,          -- the product id, e.g. BTC-USD
    open_time  timestamptz NOT NULL,
    close_time timestamptz NOT NULL,
    open       numeric NOT NULL,
    high       numeric NOT NULL,
    low        numeric NOT NULL,
    close      numeric NOT NULL,
    volume     numeric NOT NULL,
    -- when we last stored a change to this row: the "as of" of an open minute
    fetched_at timestamptz NOT NULL,
    -- serves the resume point, the latest price, the price 24 h ago and resampling
    PRIMARY KEY (symbol, open_time)
);

CREATE TABLE coinbase_ticker (
    symbol     text PRIMARY KEY,
    last_price numeric NOT NULL,
    size       numeric NOT NULL,
    bid        numeric NOT NULL,
    ask        numeric NOT NULL,
    volume     numeric NOT NULL,       -- the last 24 hours', in the base currency
    trade_id   bigint NOT NULL,
    traded_at  timestamptz NOT NULL,   -- the last trade's time
    fetched_at timestamptz NOT NULL
);
