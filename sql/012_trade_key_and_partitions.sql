-- Trades: one composite key instead of two indexes, in monthly partitions.
--
-- A trade was indexed twice: by its uuid (the primary key, for duplicates) and by
-- (symbol, time_exchange DESC, uuid DESC) for every read. The second alone serves both as
-- the primary key (symbol, time_exchange, uuid): a trade sent again comes with the same
-- time, and the reads scan it backwards. The uuid index (about a third of a trade's
-- bytes) goes. Then, as the candles, the table becomes the partition of everything before
-- next month (no row copied), so RELAY_RETAIN_TRADES can drop old months whole.

ALTER TABLE symbol_data DROP CONSTRAINT symbol_data_pkey;
DROP INDEX symbol_data_symbol_time_idx;
ALTER TABLE symbol_data ADD CONSTRAINT symbol_data_pkey PRIMARY KEY (symbol, time_exchange, uuid);

DO $$
DECLARE
    upper timestamptz := date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                         + interval '1 month';
BEGIN
    ALTER TABLE symbol_data RENAME TO symbol_data_p_before;
    ALTER INDEX symbol_data_pkey RENAME TO symbol_data_p_before_pkey;
    EXECUTE format('ALTER TABLE symbol_data_p_before ADD CONSTRAINT symbol_data_p_before_bound'
                   ' CHECK (time_exchange < %L)', upper);
    CREATE TABLE symbol_data (
        LIKE symbol_data_p_before INCLUDING DEFAULTS,
        PRIMARY KEY (symbol, time_exchange, uuid),
        FOREIGN KEY (symbol) REFERENCES symbol (id)
    ) PARTITION BY RANGE (time_exchange);
    EXECUTE format('ALTER TABLE symbol_data ATTACH PARTITION symbol_data_p_before'
                   ' FOR VALUES FROM (MINVALUE) TO (%L)', upper);
    ALTER TABLE symbol_data_p_before DROP CONSTRAINT symbol_data_p_before_bound;
END $$;
