-- When each revoked token expires, taken from the tokens relay records (sql/014), so a
-- revocation can be forgotten once its token could no longer be accepted anyway
-- (`relay prune`, and each `relay revoke`): every worker holds the whole list in memory.
-- A revocation of a token relay did not record keeps a null expiry, and is kept.
ALTER TABLE revoked_token ADD COLUMN expires_at timestamptz;

UPDATE revoked_token AS r
SET expires_at = i.expires_at
FROM issued_token AS i
WHERE i.jti = r.jti;
