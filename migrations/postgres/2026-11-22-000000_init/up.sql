-- Parley's schema on PostgreSQL. Timestamps are BIGINT milliseconds since the epoch and ids
-- BIGINT, so the one diesel `table!` schema (crates/parley-store/src/schema.rs) serves this
-- and the SQLite set in migrations/sqlite. Keep the two in step.

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    email         TEXT,
    password_hash TEXT    NOT NULL,
    is_staff      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT  NOT NULL,
    last_login    BIGINT
);

CREATE TABLE rooms (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT   NOT NULL UNIQUE,
    kind        TEXT   NOT NULL CHECK (kind IN ('public', 'private', 'direct')),
    creator_id  BIGINT REFERENCES users (id) ON DELETE SET NULL,
    topic       TEXT   NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    -- A direct room is keyed by its two members (low < high); NULL for group rooms.
    direct_low  BIGINT REFERENCES users (id) ON DELETE CASCADE,
    direct_high BIGINT REFERENCES users (id) ON DELETE CASCADE,
    CHECK ((kind = 'direct') = (direct_low IS NOT NULL AND direct_high IS NOT NULL)),
    CHECK (direct_low IS NULL OR direct_low < direct_high),
    UNIQUE (direct_low, direct_high)
);
CREATE INDEX rooms_kind_idx ON rooms (kind);

CREATE TABLE memberships (
    room_id   BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role      TEXT   NOT NULL CHECK (role IN ('owner', 'member')),
    joined_at BIGINT NOT NULL,
    last_read BIGINT,
    PRIMARY KEY (room_id, user_id)
);
-- "rooms of a user" (the primary key serves "members of a room").
CREATE INDEX memberships_user_idx ON memberships (user_id);

CREATE TABLE messages (
    id         BIGSERIAL PRIMARY KEY,
    room_id    BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    sender_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body       TEXT   NOT NULL,
    -- Idempotent retries: unique per sender; NULLs (no client id) never collide.
    client_id  TEXT,
    created_at BIGINT NOT NULL,
    edited_at  BIGINT,
    deleted_at BIGINT,
    UNIQUE (sender_id, client_id)
);
-- History paging and unread counts: a room's messages by id.
CREATE INDEX messages_room_id_idx ON messages (room_id, id);

CREATE TABLE revoked_tokens (
    -- A refresh token's jti, or a whole token family's id.
    jti        TEXT   PRIMARY KEY,
    -- When the revoked token would have expired anyway: past that the row can be pruned.
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_expires_idx ON revoked_tokens (expires_at);
