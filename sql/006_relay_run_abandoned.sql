-- A run whose process died (a killed worker, a lost database connection) before recording
-- how it ended is marked 'abandoned' by the next relay-in of its source, instead of
-- staying 'running' for ever.
ALTER TABLE relay_run DROP CONSTRAINT relay_run_status_check;
ALTER TABLE relay_run ADD CONSTRAINT relay_run_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'rejected', 'abandoned'));

-- the sweep looks for a source's runs still marked running: few, whatever the history
CREATE INDEX relay_run_running_idx ON relay_run (source) WHERE status = 'running';
