-- Every token relay mints, by its claims (never the token itself), so that
-- `relay revoke --sub NAME` can revoke all of a subject's tokens at once.
CREATE TABLE issued_token (
    jti        text PRIMARY KEY,
    sub        text NOT NULL,
    scope      text NOT NULL,
    issued_at  timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);

-- A subject's tokens that have not expired yet.
CREATE INDEX issued_token_sub_expires_idx ON issued_token (sub, expires_at);
