-- The audit log (issue 16): every staff and room-owner action, who did it, to whom, when and
-- why. Names are kept as text so an entry outlives the account or room it names; `actor_id`
-- is cleared when the actor's account is deleted.
CREATE TABLE audit_log (
    id          BIGSERIAL PRIMARY KEY,
    actor_id    BIGINT REFERENCES users (id) ON DELETE SET NULL,
    actor_name  TEXT   NOT NULL,
    action      TEXT   NOT NULL,
    target_user TEXT,
    target_room TEXT,
    detail      TEXT,
    reason      TEXT,
    created_at  BIGINT NOT NULL
);
-- Filtered by actor or by target, newest first.
CREATE INDEX audit_log_actor_idx ON audit_log (actor_name, id);
CREATE INDEX audit_log_user_idx ON audit_log (target_user, id);
CREATE INDEX audit_log_room_idx ON audit_log (target_room, id);
