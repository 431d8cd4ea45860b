-- Mentions (issue 17): one row per (mentioned user, message), written with the message (same
-- transaction). `room_id` is copied from the message so a room list counts a user's unread
-- mentions per room from the primary key alone, against the read marker.
CREATE TABLE mentions (
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    room_id    BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    message_id BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, room_id, message_id)
);
-- A message's mentions (history), and the cascade when a message goes.
CREATE INDEX mentions_message_idx ON mentions (message_id);
