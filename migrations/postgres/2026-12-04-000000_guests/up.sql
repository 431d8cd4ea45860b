-- Guests (issue 21): identities made by POST /api/auth/guest, without a password or a
-- refresh token. They are user rows so their messages have an author like any other; the
-- flag keeps them out of user lists and lets stale ones be found and removed.
ALTER TABLE users ADD COLUMN is_guest BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX users_guest_idx ON users (is_guest, created_at) WHERE is_guest;
