-- CoinMarketCap listings, logos and daily history for the dashboard and search.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Logo images, stored once per distinct content (sha256), served with their type.
CREATE TABLE logo (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha256       bytea NOT NULL UNIQUE,
    content_type text NOT NULL,
    data         bytea NOT NULL
);

-- Each logo URL is downloaded once; several URLs may share one image.
CREATE TABLE logo_source (
    url     text PRIMARY KEY,
    logo_id bigint NOT NULL REFERENCES logo (id)
);

-- One row per coin. cmc_id is CoinMarketCap's id (a renamed coin stays one coin);
-- it is null for a coin known only from an imported history file, until a
-- snapshot lists a coin of the same name and symbol.
CREATE TABLE coin (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cmc_id             integer UNIQUE,
    name               text NOT NULL,
    symbol             text NOT NULL,
    slug               text NOT NULL,
    rank               integer,
    price              numeric,
    volume_24h         numeric,
    market_cap         numeric,
    percent_change_1h  numeric,
    percent_change_24h numeric,
    percent_change_7d  numeric,
    percent_change_30d numeric,
    last_updated       timestamptz,
    logo_id            bigint REFERENCES logo (id)
);
-- "the best-ranked coin with this symbol"
CREATE INDEX coin_symbol_rank_idx ON coin (upper(symbol), rank NULLS LAST, id);
-- matching imported history to coins
CREATE INDEX coin_name_symbol_idx ON coin (lower(name), upper(symbol));
-- search by substring of name or symbol
CREATE INDEX coin_name_trgm_idx ON coin USING gin (lower(name) gin_trgm_ops);
CREATE INDEX coin_symbol_trgm_idx ON coin USING gin (lower(symbol) gin_trgm_ops);

-- One row per relay-in from CoinMarketCap.
CREATE TABLE cmc_snapshot (
    id       uuid PRIMARY KEY,
    taken_at timestamptz NOT NULL,
    coins    integer NOT NULL
);

-- What each snapshot said of each coin.
CREATE TABLE cmc_quote (
    snapshot_id        uuid NOT NULL REFERENCES cmc_snapshot (id),
    coin_id            bigint NOT NULL REFERENCES coin (id),
    rank               integer,
    price              numeric,
    volume_24h         numeric,
    market_cap         numeric,
    percent_change_1h  numeric,
    percent_change_24h numeric,
    percent_change_7d  numeric,
    percent_change_30d numeric,
    last_updated       timestamptz,
    PRIMARY KEY (snapshot_id, coin_id)
);

-- Daily OHLCV per coin: imported history, and each snapshot's running day.
CREATE TABLE coin_daily (
    coin_id    bigint NOT NULL REFERENCES coin (id),
    day        date NOT NULL,
    open       numeric,
    high       numeric,
    low        numeric,
    close      numeric NOT NULL,
    volume     numeric,
    market_cap numeric,
    PRIMARY KEY (coin_id, day)
);
-- the dashboard: every coin on one day
CREATE INDEX coin_daily_day_idx ON coin_daily (day, coin_id);
