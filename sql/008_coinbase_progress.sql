-- How far Coinbase's candle windows have been walked, per product. Coinbase sends no row
-- for a minute without trades, so after a quiet spell the newest stored minute stays behind:
-- resuming from it alone would walk the same empty windows on every run.
CREATE TABLE coinbase_progress (
    symbol    text PRIMARY KEY,
    -- the end of the last window stored (inclusive; it may have been open: asked again)
    walked_to timestamptz NOT NULL
);
