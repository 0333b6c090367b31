-- 1-minute candles in monthly partitions, so old minutes go by dropping a whole month
-- (RELAY_RETAIN_CANDLES_1M; relay/partitions.py) instead of deleting row by row.
--
-- Nothing is copied: each table becomes the partition of everything before next month
-- (its rows stay where they are; a CHECK constraint added first spares ATTACH its own
-- scan), and new months get partitions of their own as the ingest reaches them.

DO $$
DECLARE
    candles text;
    upper timestamptz := date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                         + interval '1 month';
BEGIN
    FOREACH candles IN ARRAY ARRAY['binance_candle', 'coinbase_candle'] LOOP
        EXECUTE format('ALTER TABLE %I RENAME TO %I', candles, candles || '_p_before');
        EXECUTE format('ALTER INDEX %I RENAME TO %I', candles || '_pkey',
                       candles || '_p_before_pkey');
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (open_time < %L)',
                       candles || '_p_before', candles || '_p_before_bound', upper);
        EXECUTE format(
            'CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS, PRIMARY KEY (symbol, open_time))'
            ' PARTITION BY RANGE (open_time)', candles, candles || '_p_before');
        EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (MINVALUE) TO (%L)',
                       candles, candles || '_p_before', upper);
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I',
                       candles || '_p_before', candles || '_p_before_bound');
    END LOOP;
END $$;

-- Where each table's raw rows now begin, once retention has removed older ones.
CREATE TABLE retention (
    relation  text PRIMARY KEY,
    held_from timestamptz NOT NULL
);
