-- Accounts and long-lived API tokens. Short-lived access and refresh tokens are stateless
-- (signed JWTs) and have no rows; an API token's row is what makes it revocable.

CREATE TABLE users (
    username      text PRIMARY KEY,
    role          text NOT NULL CHECK (role IN ('admin', 'user', 'worker')),
    tenant        text NULL,
    password_hash text NOT NULL,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    jti        text PRIMARY KEY,
    name       text NOT NULL,
    role       text NOT NULL CHECK (role IN ('admin', 'user', 'worker')),
    tenant     text NULL,
    created_by text NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz NULL
);
CREATE INDEX api_tokens_created_idx ON api_tokens (created_at);
