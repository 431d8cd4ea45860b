-- Full-text search (issue 17): an external-content FTS5 table over `messages.body` (the
-- text is not stored twice). The bundled SQLite is built with FTS5 (libsqlite3-sys `bundled`
-- passes -DSQLITE_ENABLE_FTS5). Tombstones (deleted messages, empty body) are left out.
--
-- New messages are indexed off the send path, not by an insert trigger: a trigger tokenized
-- every message inside the single writer's transaction and cost a third of the 200-client
-- throughput (docs/benchmarks.md). `Store::catch_up_search_index` indexes the messages above
-- `messages_fts_state.indexed_upto` in batches (on the engine's heartbeat, and before every
-- search, so a search still finds every stored message). Edits and deletes of indexed
-- messages are applied by the triggers below; those of messages not indexed yet need nothing
-- (the catch-up reads the row as it is then). Ids are AUTOINCREMENT: never reused, so a
-- message at or below the watermark was indexed (or deleted).
CREATE VIRTUAL TABLE messages_fts USING fts5(
    body, content = 'messages', content_rowid = 'id', tokenize = 'unicode61'
);
INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages WHERE deleted_at IS NULL;
CREATE TABLE messages_fts_state (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_upto INTEGER NOT NULL
);
INSERT INTO messages_fts_state (id, indexed_upto) SELECT 1, coalesce(max(id), 0) FROM messages;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
    WHEN old.deleted_at IS NULL AND old.id <= (SELECT indexed_upto FROM messages_fts_state)
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body, deleted_at ON messages
    WHEN old.id <= (SELECT indexed_upto FROM messages_fts_state)
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body)
        SELECT 'delete', old.id, old.body WHERE old.deleted_at IS NULL;
    INSERT INTO messages_fts (rowid, body)
        SELECT new.id, new.body WHERE new.deleted_at IS NULL;
END;
