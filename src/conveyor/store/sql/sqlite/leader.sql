-- Leadership: a lease row per name that expires unless its holder renews it (SQLite has no
-- session locks; PostgreSQL uses advisory locks instead and has no such table).

-- name: try_lead
-- Take the row when it is free or expired, or renew it when we hold it; a row back means we lead.
INSERT INTO leaders (name, holder, expires_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE leaders.holder = excluded.holder OR leaders.expires_at <= ?
RETURNING holder

-- name: resign
DELETE FROM leaders WHERE name = ? AND holder = ?
