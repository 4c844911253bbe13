-- Leadership: a session advisory lock on a dedicated connection, so it is lost with the
-- connection. The key is "<schema>:<name>", hashed, so stores in other schemas do not collide.

-- name: try_lead
SELECT pg_try_advisory_lock(hashtext($1))

-- name: resign
SELECT pg_advisory_unlock(hashtext($1))
