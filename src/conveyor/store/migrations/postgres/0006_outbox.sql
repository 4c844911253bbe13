-- The outbox (issue 15): what must reach Kafka, written in the transaction of the change that
-- causes it and deleted by the relay once the broker has it. Rows are written only by a store
-- opened with event publishing on (CONVEYOR_KAFKA_BOOTSTRAP set); otherwise it stays empty.
--
-- A row is one lifecycle transition: the status the job left (NULL: it was created) and the
-- job as it is after the change (to_jsonb of the row; the relay reads it back as a jobs row
-- with jsonb_populate_record, so a column added to jobs later needs nothing here). The
-- identity orders a job's transitions: the next one waits on the job's row lock, so it takes a
-- later number and commits later. Rows of concurrent transactions may commit out of number
-- order, which is why the relay deletes what it sent instead of remembering a high-water mark.
CREATE TABLE outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    from_status text,
    job         jsonb NOT NULL
) WITH (
    -- Every row is inserted once and deleted soon after: keep the dead tuples few.
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
