-- Bookkeeping of store/migrate.run_migrations: one row per applied migration, written in the
-- same write transaction as the migration's statements.

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       TEXT    PRIMARY KEY NOT NULL,
    applied_at INTEGER NOT NULL
)

-- name: applied_migrations
SELECT name FROM schema_migrations

-- name: record_migration
INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)

-- name: migrations_table_exists
SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'
