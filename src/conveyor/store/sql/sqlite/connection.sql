-- Connection set-up and transaction control of the SQLite store.

-- name: connection_pragmas
-- Run statement by statement on every connection the store opens. busy_timeout (ms): SQLite's
-- busy handler queues writers for this long before SQLITE_BUSY, after which the store retries
-- the whole transaction.
PRAGMA busy_timeout = 15000;
PRAGMA foreign_keys = ON;
PRAGMA synchronous = NORMAL;
PRAGMA temp_store = MEMORY;
PRAGMA cache_size = -32000;

-- name: journal_mode_wal
-- WAL, so readers never block the writer and several processes can share the file. Switching
-- needs a moment of exclusive access, so the store retries it while the file is busy.
PRAGMA journal_mode = WAL

-- name: begin_immediate
-- Every write transaction takes the write lock up front: two writers never deadlock trying to
-- upgrade a read lock, and the busy handler queues them.
BEGIN IMMEDIATE

-- name: commit
COMMIT

-- name: rollback
ROLLBACK

-- name: ping
SELECT 1

-- name: writer_pragmas
-- The write connection waits for no lock inside SQLite: BEGIN IMMEDIATE fails at once while
-- another connection writes, and the store retries after a short fixed pause (see _write in
-- store/sqlite.py) instead of the busy handler's growing sleeps (1, 2, 5, 10, 15, 20... ms).
PRAGMA busy_timeout = 0;
-- Its automatic checkpoint would run inside a COMMIT on the event loop's thread: the store
-- checkpoints on a thread of its own instead (see checkpoint), and this one, at a WAL of ~40 MB
-- rather than the default ~4 MB, is only the safety net.
PRAGMA wal_autocheckpoint = 10000;

-- name: checkpoint
-- Copies committed WAL frames into the database without waiting for any lock; run by the store
-- in the background while it commits.
PRAGMA wal_checkpoint(PASSIVE)
