-- SQLite's 0007_cheaper_status_changes respells its status CHECK and two partial indexes'
-- predicates without IN lists of three or more values (SQLite evaluates those through a
-- temporary b-tree for every row written; PostgreSQL does not) and narrows its own
-- jobs_queue_status_idx, which PostgreSQL never had. Both backends now count a limited queue's
-- running jobs from the index of running leases, which carries the queue for that (an
-- index-only walk; no extra write: a heartbeat moves the entry anyway).
DROP INDEX jobs_reap_idx;
CREATE INDEX jobs_reap_idx ON jobs (lease_expires_at, queue) WHERE status = 'running';
