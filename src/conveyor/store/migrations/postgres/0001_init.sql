-- Conveyor PostgreSQL schema, version 1.
-- Runs with search_path set to the store's schema, so nothing here is schema-qualified.

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    queue            text NOT NULL,
    type             text NOT NULL,
    payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
    priority         integer NOT NULL DEFAULT 0,
    status           text NOT NULL CHECK (status IN (
                         'scheduled', 'queued', 'running', 'retrying',
                         'completed', 'dead', 'cancelled')),
    run_at           timestamptz NOT NULL,
    attempt          integer NOT NULL DEFAULT 0,
    max_retries      integer NOT NULL DEFAULT 3,
    timeout          double precision NOT NULL DEFAULT 300,
    unique_key       text NULL,
    tags             text[] NOT NULL DEFAULT '{}',
    tenant           text NULL,
    result           jsonb NULL,
    last_error       text NULL,
    worker_id        text NULL,
    lease_expires_at timestamptz NULL,
    lease_token      bigint NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz NULL,
    finished_at      timestamptz NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
) WITH (
    -- The hot table churns constantly (every job is inserted, updated 2-3 times and later
    -- deleted): vacuum it early and without throttling so dead tuples do not pile up in the
    -- claim index, and leave room on each page for HOT updates.
    fillfactor = 85,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

-- Claim: ready jobs of one queue in claim order, so a LIMIT reads only what it takes.
CREATE INDEX jobs_claim_idx ON jobs (queue, priority DESC, run_at, id) WHERE status = 'queued';
-- Promotion of delayed and backing-off jobs.
CREATE INDEX jobs_promote_idx ON jobs (run_at) WHERE status IN ('scheduled', 'retrying');
-- Lease reaper (also serves running counts for queue concurrency limits).
CREATE INDEX jobs_reap_idx ON jobs (lease_expires_at) WHERE status = 'running';
-- One live job per unique_key; terminal jobs free the key.
CREATE UNIQUE INDEX jobs_unique_key_idx ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND status NOT IN ('completed', 'dead', 'cancelled');
-- Listing, newest first, by queue or by status.
CREATE INDEX jobs_queue_id_idx ON jobs (queue, id);
CREATE INDEX jobs_status_id_idx ON jobs (status, id);
-- Retention: prune finished jobs by age.
CREATE INDEX jobs_prune_idx ON jobs (status, finished_at)
    WHERE status IN ('completed', 'dead', 'cancelled');

CREATE TABLE job_events (
    id          bigserial PRIMARY KEY,
    job_id      uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL DEFAULT now(),
    from_status text NULL,
    to_status   text NOT NULL,
    attempt     integer NOT NULL DEFAULT 0,
    worker_id   text NULL,
    message     text NULL
) WITH (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

CREATE INDEX job_events_job_idx ON job_events (job_id, id);

CREATE TABLE queues (
    name        text PRIMARY KEY,
    paused      boolean NOT NULL DEFAULT false,
    max_depth   integer NULL,
    concurrency integer NULL
);

CREATE TABLE workers (
    id           text PRIMARY KEY,
    hostname     text NOT NULL,
    pid          integer NOT NULL,
    queues       text[] NOT NULL DEFAULT '{}',
    concurrency  integer NOT NULL,
    started_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    running      integer NOT NULL DEFAULT 0,
    meta         jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE TABLE schedules (
    name        text PRIMARY KEY,
    cron        text NOT NULL,
    timezone    text NOT NULL,
    type        text NOT NULL,
    payload     jsonb NOT NULL DEFAULT '{}'::jsonb,
    queue       text NOT NULL DEFAULT 'default',
    priority    integer NOT NULL DEFAULT 0,
    max_retries integer NOT NULL DEFAULT 3,
    timeout     double precision NOT NULL DEFAULT 300,
    enabled     boolean NOT NULL DEFAULT true,
    next_run_at timestamptz NULL,
    last_run_at timestamptz NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX schedules_due_idx ON schedules (next_run_at) WHERE enabled;
