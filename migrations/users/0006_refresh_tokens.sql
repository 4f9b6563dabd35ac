-- Refresh tokens (issue 27): access tokens are short-lived, and a session
-- goes on by exchanging a refresh token at POST /auth/token. Stored as the
-- token's SHA-256 only, with the account's token version when it was
-- issued: after a password change (which bumps users.token_version) no
-- refresh token of before is accepted. Single use: a refresh deletes the
-- row it used and stores a new one.
CREATE TABLE refresh_tokens (
    token_hash    text PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_version bigint NOT NULL,
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_by_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_by_expiry ON refresh_tokens (expires_at);
