-- The outbox (issue 15): what must reach Kafka, written in the transaction of the change that
-- causes it and deleted by the relay once the broker has it. Rows are written only by a store
-- opened with event publishing on (CONVEYOR_KAFKA_BOOTSTRAP set); otherwise it stays empty.
--
-- A row is one lifecycle transition: the status the job left (NULL: it was created) and the
-- job as it is after the change (a JSON array of the jobs columns in {{job_columns}} order, so
-- the driver's row mapper reads it back). AUTOINCREMENT: ids are never reused after the relay
-- empties the table, so an event id (job id and outbox id) is never handed out twice.
CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    from_status TEXT,
    job         TEXT NOT NULL
);
