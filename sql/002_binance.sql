-- Binance: 1-minute candles and the latest 24-hour ticker per symbol.

-- One row per symbol and minute. The still-open minute is updated in place
-- by later runs. Prices and volumes keep every digit Binance sent.
CREATE TABLE binance_candle (
    symbol          text NOT NULL,
    open_time       timestamptz NOT NULL,
    close_time      timestamptz NOT NULL,
    open            numeric NOT NULL,
    high            numeric NOT NULL,
    low             numeric NOT NULL,
    close           numeric NOT NULL,
    volume          numeric NOT NULL,
    quote_volume    numeric NOT NULL,
    trades          bigint NOT NULL,
    taker_buy_base  numeric NOT NULL,
    taker_buy_quote numeric NOT NULL,
    -- when we last stored a change to this row: the "as of" of an open minute
    fetched_at      timestamptz NOT NULL,
    -- serves the resume point, the latest price, the price 24 h ago and resampling
    PRIMARY KEY (symbol, open_time)
);

CREATE TABLE binance_ticker (
    symbol               text PRIMARY KEY,
    last_price           numeric NOT NULL,
    open_price           numeric NOT NULL,
    high_price           numeric NOT NULL,
    low_price            numeric NOT NULL,
    volume               numeric NOT NULL,
    quote_volume         numeric NOT NULL,
    price_change         numeric NOT NULL,
    price_change_percent numeric NOT NULL,
    open_time            timestamptz NOT NULL,
    close_time           timestamptz NOT NULL,
    trades               bigint NOT NULL,
    fetched_at           timestamptz NOT NULL
);
