-- The store's own connections.

-- name: ping
-- Liveness of the store, and of a leader's dedicated connection (see leader.sql).
SELECT 1
