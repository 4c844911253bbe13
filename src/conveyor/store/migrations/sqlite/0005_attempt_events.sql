-- One job_events row per finished attempt instead of one per transition, as PostgreSQL's
-- 0005_attempt_events (see store.common.audit_trail): a transition out of `running` records
-- when its attempt started (microseconds since the epoch, like every time column here).
ALTER TABLE job_events ADD COLUMN started_at INTEGER;
