-- Replies and reactions (issue 17).
-- The message a message answers (same room; checked by the engine). No foreign key and no
-- index: a plain message pays nothing for the column, and a reply whose original is gone
-- (its author's account deleted) reads as a deleted original.
ALTER TABLE messages ADD COLUMN reply_to BIGINT;

-- One row per (message, user, emoji); `id` orders a message's reactions by first use.
CREATE TABLE reactions (
    id         INTEGER PRIMARY KEY,
    message_id BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    emoji      TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (message_id, user_id, emoji)
);
-- Deleting an account removes its reactions.
CREATE INDEX reactions_user_idx ON reactions (user_id);
