-- CoinAPI trade history: the original Relay API tables.

-- One row per CoinAPI symbol id we relay (e.g. BITSTAMP_SPOT_BTC_USD).
CREATE TABLE symbol (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    symbol_id  text NOT NULL UNIQUE CHECK (symbol_id <> ''),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per trade. uuid is CoinAPI's own trade id: a trade is never stored twice.
-- Prices and sizes are NUMERIC so every digit CoinAPI sent is kept.
CREATE TABLE symbol_data (
    uuid          uuid PRIMARY KEY,
    symbol        bigint NOT NULL REFERENCES symbol (id),
    time_exchange timestamptz NOT NULL,
    time_coinapi  timestamptz NOT NULL,
    price         numeric NOT NULL,
    size          numeric NOT NULL,
    taker_side    text NOT NULL
);

-- Serves relay-out (newest first, keyset pagination on (time_exchange, uuid))
-- and the relay-in resume point (the newest time_exchange of a symbol).
CREATE INDEX symbol_data_symbol_time_idx
    ON symbol_data (symbol, time_exchange DESC, uuid DESC);

-- Revoked tokens, by their jti claim; checked on every authenticated request.
CREATE TABLE revoked_token (
    jti        text PRIMARY KEY,
    revoked_at timestamptz NOT NULL DEFAULT now()
);
