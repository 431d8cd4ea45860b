-- Guest names staff have banned (issue 21): a guest may not sign in under one, and guests
-- already using it lose their sockets. `name` is the chosen name, lower-case, as in
-- `guest.{name}.{tag}`.
CREATE TABLE guest_bans (
    name       TEXT   PRIMARY KEY,
    created_at BIGINT NOT NULL
);
