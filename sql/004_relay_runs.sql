-- Every relay-in call: who fired it, for what, how it ended.
CREATE TABLE relay_run (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      text NOT NULL,
    symbols     text[] NOT NULL,
    fired_by    text NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    -- running, succeeded, failed, or rejected (409: the same run was already under way)
    status      text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'rejected')),
    http_status integer,
    processed   integer,
    complete    boolean,
    error       text
);

-- the runs list, newest first, overall and per source
CREATE INDEX relay_run_started_idx ON relay_run (started_at DESC, id DESC);
CREATE INDEX relay_run_source_started_idx ON relay_run (source, started_at DESC, id DESC);
-- /health: the last successful run of each source
CREATE INDEX relay_run_source_success_idx ON relay_run (source, finished_at DESC)
    WHERE status = 'succeeded';
