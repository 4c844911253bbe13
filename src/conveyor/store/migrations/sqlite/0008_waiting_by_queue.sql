-- Nothing to change on SQLite: PostgreSQL's 0008_waiting_by_queue adds a jobs_queue_status_idx
-- over the waiting statuses, SQLite's own (since 0001, narrowed in 0007) already serves its
-- depth check. This migration exists so that both backends apply the same migration names
-- (tests/store/test_schema_parity.py).
SELECT 1;
