-- Accounts and long-lived API tokens. Short-lived access and refresh tokens are stateless
-- (signed JWTs) and have no rows; an API token's row is what makes it revocable.

CREATE TABLE users (
    username      TEXT    PRIMARY KEY NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'user', 'worker')),
    tenant        TEXT,
    password_hash TEXT    NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    jti        TEXT    PRIMARY KEY NOT NULL,
    name       TEXT    NOT NULL,
    role       TEXT    NOT NULL CHECK (role IN ('admin', 'user', 'worker')),
    tenant     TEXT,
    created_by TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX api_tokens_created_idx ON api_tokens (created_at);
