-- Users and long-lived API tokens.

-- name: insert_user
INSERT INTO users ({{user_columns}}) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (username) DO NOTHING
RETURNING {{user_columns}}

-- name: select_user
SELECT {{user_columns}} FROM users WHERE username = ?

-- name: list_users
SELECT {{user_columns}} FROM users ORDER BY username

-- name: update_user
UPDATE users SET role = ?, tenant = ?, password_hash = ?, disabled = ?, updated_at = ?
WHERE username = ?
RETURNING {{user_columns}}

-- name: insert_token
INSERT INTO api_tokens ({{token_columns}}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)
ON CONFLICT (jti) DO NOTHING
RETURNING {{token_columns}}

-- name: select_token
SELECT {{token_columns}} FROM api_tokens WHERE jti = ?

-- name: list_tokens
SELECT {{token_columns}} FROM api_tokens ORDER BY created_at, jti

-- name: revoke_token
-- A token already revoked keeps its first revoked_at.
UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE jti = ?
RETURNING {{token_columns}}
