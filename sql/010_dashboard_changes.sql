-- The dashboard's changes stored with each day, so a page reads the rows it shows.
--
-- A day's 24h, 7d and 1m changes depend on its close and the closes 1, 7 and 30 days
-- before. Triggers keep them in the same statement as any write of a close, from any
-- writer (a snapshot's running day, a history import, a fix by hand): every row whose
-- close or any of those three closes was written, moved or deleted is worked out again,
-- with the very expression the dashboard used to compute per request. coin_day keeps
-- each day's number of coins (the dashboard's total) the same way.

ALTER TABLE coin_daily
    ADD COLUMN change_24h numeric,
    ADD COLUMN change_7d  numeric,
    ADD COLUMN change_1m  numeric;

-- Each row's changes as they should be: against the close 1, 7 and 30 days before,
-- null where that day is missing or closed at 0.
CREATE VIEW coin_daily_change AS
SELECT t.coin_id, t.day,
    round((t.close / nullif(b1.close, 0) - 1) * 100, 4) AS change_24h,
    round((t.close / nullif(b7.close, 0) - 1) * 100, 4) AS change_7d,
    round((t.close / nullif(b30.close, 0) - 1) * 100, 4) AS change_1m
FROM coin_daily AS t
LEFT JOIN coin_daily AS b1 ON b1.coin_id = t.coin_id AND b1.day = t.day - 1
LEFT JOIN coin_daily AS b7 ON b7.coin_id = t.coin_id AND b7.day = t.day - 7
LEFT JOIN coin_daily AS b30 ON b30.coin_id = t.coin_id AND b30.day = t.day - 30;

UPDATE coin_daily AS t
SET change_24h = f.change_24h, change_7d = f.change_7d, change_1m = f.change_1m
FROM coin_daily_change AS f
WHERE f.coin_id = t.coin_id AND f.day = t.day
  AND (t.change_24h, t.change_7d, t.change_1m)
      IS DISTINCT FROM (f.change_24h, f.change_7d, f.change_1m);

-- The coins held on each day (the dashboard's total); a day without any has no row.
CREATE TABLE coin_day (
    day   date PRIMARY KEY,
    coins integer NOT NULL
);
INSERT INTO coin_day (day, coins) SELECT day, count(*) FROM coin_daily GROUP BY day;

-- Writers of coin_daily take turns (until commit): each works its changes out after
-- the others' writes are committed, so none is left computed from a close since changed.
CREATE FUNCTION coin_daily_take_turn() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('coin_daily'), hashtext('changes'));
    RETURN NULL;
END
$$;

-- After each statement that wrote coin_daily: the rows whose close, or a close 1, 7 or
-- 30 days before theirs, was written, moved or deleted are worked out again (only those
-- that differ are rewritten), and each day's count moves by the rows it gained or lost.
-- The statement runs as dynamic SQL so it is planned for the rows actually written: a
-- snapshot's 5000 probe their neighbours by key, an import's millions are hash-joined.
CREATE FUNCTION coin_daily_written() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    came text := 'SELECT coin_id, day, close, 1 AS n FROM new_rows';
    went text := 'SELECT coin_id, day, close, -1 AS n FROM old_rows';
BEGIN
    -- Nothing written, or only changes (this function's own update ends here).
    IF TG_OP = 'INSERT' THEN
        PERFORM FROM new_rows LIMIT 1;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM FROM old_rows LIMIT 1;
    ELSE
        PERFORM FROM (SELECT coin_id, day, close FROM new_rows
                      EXCEPT ALL SELECT coin_id, day, close FROM old_rows) AS k LIMIT 1;
    END IF;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    EXECUTE format($sql$
        WITH moved AS (%s),
        -- a row whose key and close are the same after as before changed nothing here
        changed AS MATERIALIZED (
            SELECT coin_id, day, sum(n) AS n FROM moved
            GROUP BY coin_id, day, close HAVING sum(n) <> 0
        ),
        counted AS (
            INSERT INTO coin_day AS d (day, coins)
            SELECT day, sum(n) FROM changed GROUP BY day HAVING sum(n) <> 0
            ON CONFLICT (day) DO UPDATE SET coins = d.coins + EXCLUDED.coins
        )
        UPDATE coin_daily AS t
        SET change_24h = f.change_24h, change_7d = f.change_7d, change_1m = f.change_1m
        FROM (SELECT DISTINCT c.coin_id, c.day + s.after AS day
              FROM changed AS c, (VALUES (0), (1), (7), (30)) AS s (after)) AS a
        JOIN coin_daily_change AS f ON f.coin_id = a.coin_id AND f.day = a.day
        WHERE t.coin_id = f.coin_id AND t.day = f.day
          AND (t.change_24h, t.change_7d, t.change_1m)
              IS DISTINCT FROM (f.change_24h, f.change_7d, f.change_1m)
    $sql$, CASE TG_OP WHEN 'INSERT' THEN came
                      WHEN 'DELETE' THEN went
                      ELSE came || ' UNION ALL ' || went END);
    DELETE FROM coin_day WHERE coins = 0;
    RETURN NULL;
END
$$;

CREATE FUNCTION coin_daily_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM coin_day;
    RETURN NULL;
END
$$;

CREATE TRIGGER coin_daily_take_turn BEFORE INSERT OR UPDATE OR DELETE ON coin_daily
    FOR EACH STATEMENT EXECUTE FUNCTION coin_daily_take_turn();
CREATE TRIGGER coin_daily_inserted AFTER INSERT ON coin_daily
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION coin_daily_written();
CREATE TRIGGER coin_daily_updated AFTER UPDATE ON coin_daily
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION coin_daily_written();
CREATE TRIGGER coin_daily_deleted AFTER DELETE ON coin_daily
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION coin_daily_written();
CREATE TRIGGER coin_daily_truncated AFTER TRUNCATE ON coin_daily
    FOR EACH STATEMENT EXECUTE FUNCTION coin_daily_truncated();

-- Every order of the dashboard from an index: the day's coins by each column, read
-- forwards or backwards; those without a value (nulls) come after, by rank then id.
-- The indexes of a nullable column are partial, one for the rows with a value and one
-- for those without, so each row is in one of the two; coin_daily_day_idx, which finds
-- the coins of a day, finds them by price now (a close is never null). A write of a
-- coin_daily row updates 7 indexes where it updated 2.
DROP INDEX coin_daily_day_idx;
CREATE INDEX coin_daily_day_idx ON coin_daily (day, close);
CREATE INDEX coin_daily_day_change_24h_idx ON coin_daily (day, change_24h)
    WHERE change_24h IS NOT NULL;
CREATE INDEX coin_daily_day_change_7d_idx ON coin_daily (day, change_7d)
    WHERE change_7d IS NOT NULL;
CREATE INDEX coin_daily_day_change_1m_idx ON coin_daily (day, change_1m)
    WHERE change_1m IS NOT NULL;
CREATE INDEX coin_daily_day_volume_idx ON coin_daily (day, volume)
    WHERE volume IS NOT NULL;
CREATE INDEX coin_daily_day_market_cap_idx ON coin_daily (day, market_cap)
    WHERE market_cap IS NOT NULL;
CREATE INDEX coin_daily_day_no_change_24h_idx ON coin_daily (day) WHERE change_24h IS NULL;
CREATE INDEX coin_daily_day_no_change_7d_idx ON coin_daily (day) WHERE change_7d IS NULL;
CREATE INDEX coin_daily_day_no_change_1m_idx ON coin_daily (day) WHERE change_1m IS NULL;
CREATE INDEX coin_daily_day_no_volume_idx ON coin_daily (day) WHERE volume IS NULL;
CREATE INDEX coin_daily_day_no_market_cap_idx ON coin_daily (day) WHERE market_cap IS NULL;
-- the coins without a value on a day where most have none
CREATE INDEX coin_rank_idx ON coin (rank, id);
