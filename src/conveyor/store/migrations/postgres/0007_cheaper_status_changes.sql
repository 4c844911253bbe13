-- Nothing to change on PostgreSQL: this migration exists so that both backends apply the same
-- migration names (tests/store/test_schema_parity.py). SQLite's 0007_cheaper_status_changes
-- respells its status CHECK and two partial indexes' predicates without IN lists of three or
-- more values (SQLite evaluates those through a temporary b-tree for every row written;
-- PostgreSQL does not) and narrows its own jobs_queue_status_idx, which PostgreSQL never had.
SELECT 1;
