-- A limited queue's depth check (max_depth) counts its queued jobs in jobs_claim_idx and its
-- waiting ones (scheduled, retrying) here. With no index of the waiting jobs by queue, that
-- count walked every waiting job of every queue on each submit into a limited queue, or (with
-- run_at uncorrelated with the heap) planned as a sequential scan of jobs.
--
-- Migration 0004 left SQLite's (queue, status) index out here for costing about a tenth of the
-- drain. This one holds only jobs resting in a waiting status, so a claim (queued -> running)
-- and a completion (running -> finished) write no entry to it; a submit with a future run_at
-- and a retry write one. Measured: WAL of a claim + completion 800-820 B per job with or
-- without it; a store-level drain (claim 200 + complete, 20k jobs, 12 alternating rounds)
-- 41.8k jobs/s with it, 38.7k without (noise); a scheduled insert ~450 -> ~520-575 B of WAL.
-- Same name and columns as SQLite's index, whose predicate is wider (it also serves
-- count_by_queue_status there).
CREATE INDEX jobs_queue_status_idx ON jobs (queue, status)
    WHERE status IN ('retrying', 'scheduled');
