-- Wake-ups for workers waiting in LISTEN on the store's channel; the payload is a queue name.

-- name: notify_queues
-- Sent by the NotifyCoalescer after an enqueue committed on a pooled connection (see there for
-- why not inside it): one notification per queue. The array comes through a sub-select so
-- that the plan cache keeps one generic plan (see `complete` in job.sql).
SELECT count(pg_notify($1, q)) FROM unnest((SELECT $2::text[])) AS q
