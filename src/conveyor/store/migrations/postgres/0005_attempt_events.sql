-- One job_events row per finished attempt instead of one per transition (see
-- store.common.audit_trail): creation and claims are no longer written, and a transition out
-- of `running` records when its attempt started. Adding a nullable column rewrites nothing.
ALTER TABLE job_events ADD COLUMN IF NOT EXISTS started_at timestamptz NULL;
