-- Full-text search (issue 17). An expression GIN index: no column is stored or bound on
-- insert; the engine's query repeats this exact expression so the planner uses the index.
-- The 'simple' configuration (lower-case words, no stemming, no stop words) is chosen to
-- match SQLite's FTS5 `unicode61` tokenizer as closely as possible. Tombstones (deleted
-- messages) are left out of the index.
CREATE INDEX messages_body_search_idx ON messages
    USING GIN (to_tsvector('simple', body)) WHERE deleted_at IS NULL;
