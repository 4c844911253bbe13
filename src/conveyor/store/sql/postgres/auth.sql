-- Users (password logins) and long-lived API tokens (the row is what makes a token revocable;
-- the token itself is never stored).

-- name: insert_user
-- No row back when the username is taken.
INSERT INTO users (username, role, tenant, password_hash, disabled)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (username) DO NOTHING
RETURNING {{user_columns}}

-- name: get_user
SELECT {{user_columns}} FROM users WHERE username = $1

-- name: list_users
SELECT {{user_columns}} FROM users ORDER BY username

-- name: update_user
UPDATE users SET role = $2, tenant = $3, password_hash = $4, disabled = $5, updated_at = now()
 WHERE username = $1
RETURNING {{user_columns}}

-- name: insert_token
-- No row back when the jti is taken.
INSERT INTO api_tokens (jti, name, role, tenant, created_by, expires_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (jti) DO NOTHING
RETURNING {{token_columns}}

-- name: get_token
SELECT {{token_columns}} FROM api_tokens WHERE jti = $1

-- name: list_tokens
SELECT {{token_columns}} FROM api_tokens ORDER BY created_at, jti

-- name: revoke_token
-- A token revoked twice keeps its first revocation time.
UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE jti = $1
RETURNING {{token_columns}}
