-- Hourly and daily candles beside each exchange's 1-minute rows (relay/rollups.py keeps
-- them: every bucket a stored page touches is aggregated again in the same transaction).
-- A row holds what the exchange's rule needs to combine buckets without the minutes:
-- the open of the first minute that traded, the high and low over the minutes that
-- traded (null when none did), the last minute's close, the summed volume.

CREATE TABLE binance_candle_1h (
    symbol      text NOT NULL,
    bucket      timestamptz NOT NULL,
    traded_open numeric,
    traded_high numeric,
    traded_low  numeric,
    close       numeric NOT NULL,
    volume      numeric NOT NULL,
    PRIMARY KEY (symbol, bucket)
);
CREATE TABLE binance_candle_1d (LIKE binance_candle_1h INCLUDING ALL);
CREATE TABLE coinbase_candle_1h (LIKE binance_candle_1h INCLUDING ALL);
CREATE TABLE coinbase_candle_1d (LIKE binance_candle_1h INCLUDING ALL);

-- What is already held, rolled up once: hours from minutes, then days from hours.
DO $$
DECLARE
    candles text;
BEGIN
    FOREACH candles IN ARRAY ARRAY['binance_candle', 'coinbase_candle'] LOOP
        EXECUTE format($q$
            INSERT INTO %I
            SELECT symbol,
                   date_bin('1 hour', open_time, timestamptz '1970-01-01 00:00:00+00') AS bucket,
                   (array_agg(open ORDER BY open_time) FILTER (WHERE volume > 0))[1],
                   max(high) FILTER (WHERE volume > 0), min(low) FILTER (WHERE volume > 0),
                   (array_agg(close ORDER BY open_time))[count(*)], sum(volume)
            FROM %I GROUP BY symbol, bucket
        $q$, candles || '_1h', candles);
        EXECUTE format($q$
            INSERT INTO %I
            SELECT symbol,
                   date_bin('1 day', bucket, timestamptz '1970-01-01 00:00:00+00') AS day,
                   (array_agg(traded_open ORDER BY bucket)
                       FILTER (WHERE traded_open IS NOT NULL))[1],
                   max(traded_high), min(traded_low),
                   (array_agg(close ORDER BY bucket))[count(*)], sum(volume)
            FROM %I GROUP BY symbol, day
        $q$, candles || '_1d', candles || '_1h');
    END LOOP;
END $$;
