-- The dashboard's changes never empty when CoinMarketCap has them.
--
-- Each listing carries CoinMarketCap's own 24h, 7d and 30d changes; they are kept with the
-- day a snapshot writes (the last snapshot of the day, as its close), every digit. Which
-- figures a row shows, and is ordered by, is stored with it (generated columns), so a page
-- still reads along an index of the column chosen:
--   on the latest snapshot's day: CoinMarketCap's, when the snapshot has any, else the
--     changes from daily closes (sql/010);
--   on any other day: the changes from daily closes, unless a close is missing for a
--     change the snapshot has; then the snapshot's.
-- A row shows one source's three figures, never a mix, so ``changes_from`` is true of all.
-- snapshot_latest marks the rows of the latest snapshot's day.

ALTER TABLE coin_daily
    ADD COLUMN cmc_change_24h  numeric,
    ADD COLUMN cmc_change_7d   numeric,
    ADD COLUMN cmc_change_30d  numeric,
    ADD COLUMN snapshot_latest boolean NOT NULL DEFAULT false;

-- The days already held take the figures of their last snapshot that had a price (the
-- one that wrote the close).
UPDATE coin_daily AS t
SET cmc_change_24h = q.percent_change_24h, cmc_change_7d = q.percent_change_7d,
    cmc_change_30d = q.percent_change_30d
FROM (
    SELECT DISTINCT ON (q.coin_id, (s.taken_at AT TIME ZONE 'UTC')::date)
        q.coin_id, (s.taken_at AT TIME ZONE 'UTC')::date AS day,
        q.percent_change_24h, q.percent_change_7d, q.percent_change_30d
    FROM cmc_quote AS q JOIN cmc_snapshot AS s ON s.id = q.snapshot_id
    WHERE q.price IS NOT NULL
    ORDER BY q.coin_id, (s.taken_at AT TIME ZONE 'UTC')::date, s.taken_at DESC
) AS q
WHERE t.coin_id = q.coin_id AND t.day = q.day
  AND num_nonnulls(q.percent_change_24h, q.percent_change_7d, q.percent_change_30d) > 0;

-- The latest snapshot's day, found from the newest snapshot by index.
CREATE INDEX cmc_snapshot_taken_at_idx ON cmc_snapshot (taken_at);

UPDATE coin_daily SET snapshot_latest = true
WHERE day = (SELECT (max(taken_at) AT TIME ZONE 'UTC')::date FROM cmc_snapshot)
  AND num_nonnulls(cmc_change_24h, cmc_change_7d, cmc_change_30d) > 0;

-- Every row written with CoinMarketCap's changes is marked by whether its day is the latest
-- snapshot's, whoever writes it (a snapshot, a fix by hand that moves a row); a snapshot of
-- a later day unmarks the days before (relay/sources/cmc/store.py). Rows without those
-- changes show the closes' whatever the mark, so they are left as they are.
CREATE FUNCTION coin_daily_mark_latest() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.snapshot_latest := coalesce(
        NEW.day = (SELECT (max(taken_at) AT TIME ZONE 'UTC')::date FROM cmc_snapshot), false);
    RETURN NEW;
END
$$;
CREATE TRIGGER coin_daily_mark_latest BEFORE INSERT OR UPDATE ON coin_daily
    FOR EACH ROW
    WHEN (num_nonnulls(NEW.cmc_change_24h, NEW.cmc_change_7d, NEW.cmc_change_30d) > 0)
    EXECUTE FUNCTION coin_daily_mark_latest();

-- Whether a row shows the snapshot's figures (the rule above), from its own columns.
CREATE FUNCTION coin_daily_from_snapshot(
    latest boolean,
    cmc_24h numeric, cmc_7d numeric, cmc_30d numeric,
    close_24h numeric, close_7d numeric, close_1m numeric
) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN latest
        THEN num_nonnulls(cmc_24h, cmc_7d, cmc_30d) > 0
        ELSE (cmc_24h IS NOT NULL AND close_24h IS NULL)
          OR (cmc_7d IS NOT NULL AND close_7d IS NULL)
          OR (cmc_30d IS NOT NULL AND close_1m IS NULL)
    END
$$;

ALTER TABLE coin_daily
    ADD COLUMN shown_from_snapshot boolean GENERATED ALWAYS AS (coin_daily_from_snapshot(
        snapshot_latest, cmc_change_24h, cmc_change_7d, cmc_change_30d,
        change_24h, change_7d, change_1m)) STORED,
    ADD COLUMN shown_change_24h numeric GENERATED ALWAYS AS (CASE WHEN coin_daily_from_snapshot(
        snapshot_latest, cmc_change_24h, cmc_change_7d, cmc_change_30d,
        change_24h, change_7d, change_1m) THEN cmc_change_24h ELSE change_24h END) STORED,
    ADD COLUMN shown_change_7d numeric GENERATED ALWAYS AS (CASE WHEN coin_daily_from_snapshot(
        snapshot_latest, cmc_change_24h, cmc_change_7d, cmc_change_30d,
        change_24h, change_7d, change_1m) THEN cmc_change_7d ELSE change_7d END) STORED,
    ADD COLUMN shown_change_1m numeric GENERATED ALWAYS AS (CASE WHEN coin_daily_from_snapshot(
        snapshot_latest, cmc_change_24h, cmc_change_7d, cmc_change_30d,
        change_24h, change_7d, change_1m) THEN cmc_change_30d ELSE change_1m END) STORED;

-- The dashboard orders by what it shows: the indexes of sql/010 move to those columns.
DROP INDEX coin_daily_day_change_24h_idx, coin_daily_day_change_7d_idx,
    coin_daily_day_change_1m_idx, coin_daily_day_no_change_24h_idx,
    coin_daily_day_no_change_7d_idx, coin_daily_day_no_change_1m_idx;
CREATE INDEX coin_daily_day_shown_change_24h_idx ON coin_daily (day, shown_change_24h)
    WHERE shown_change_24h IS NOT NULL;
CREATE INDEX coin_daily_day_shown_change_7d_idx ON coin_daily (day, shown_change_7d)
    WHERE shown_change_7d IS NOT NULL;
CREATE INDEX coin_daily_day_shown_change_1m_idx ON coin_daily (day, shown_change_1m)
    WHERE shown_change_1m IS NOT NULL;
CREATE INDEX coin_daily_day_no_shown_change_24h_idx ON coin_daily (day)
    WHERE shown_change_24h IS NULL;
CREATE INDEX coin_daily_day_no_shown_change_7d_idx ON coin_daily (day)
    WHERE shown_change_7d IS NULL;
CREATE INDEX coin_daily_day_no_shown_change_1m_idx ON coin_daily (day)
    WHERE shown_change_1m IS NULL;
-- the rows a new day's snapshot unmarks
CREATE INDEX coin_daily_snapshot_latest_idx ON coin_daily (day) WHERE snapshot_latest;
