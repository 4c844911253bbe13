-- Migration bookkeeping (store.migrate runs the numbered scripts). All of it runs in one
-- transaction under a transaction-scoped advisory lock, so concurrent `migrate` calls apply
-- each migration once. DDL takes no parameters: {schema} is filled in with a quoted
-- identifier (quote_ident) before the statement runs.

-- name: migrate_lock
-- Taken first, so that concurrent CREATE SCHEMA calls do not collide.
SELECT pg_advisory_xact_lock(hashtext($1))

-- name: create_schema
CREATE SCHEMA IF NOT EXISTS {schema}

-- name: migration_search_path
SET LOCAL search_path TO {schema}

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- name: applied_migrations
SELECT name FROM schema_migrations

-- name: record_migration
INSERT INTO schema_migrations (name) VALUES ($1)

-- name: migrations_table_exists
SELECT 1 WHERE to_regclass('schema_migrations') IS NOT NULL
