-- Room moderation (issue 16): read-only rooms, bans and mutes. A ban outlives the membership
-- it ended (a banned user cannot rejoin a public room); a mute is kept apart from the
-- membership for the same reason (leaving and rejoining does not lift it). `until` NULL: the
-- mute lasts until lifted; otherwise it ends by itself at that time (compared when read, no
-- background job).
ALTER TABLE rooms ADD COLUMN read_only BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE room_bans (
    room_id    BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reason     TEXT,
    banned_by  BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
-- "rooms a user is banned from" (the public room list leaves them out).
CREATE INDEX room_bans_user_idx ON room_bans (user_id);

CREATE TABLE room_mutes (
    room_id    BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    until      BIGINT,
    reason     TEXT,
    muted_by   BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
