-- Administration (issue 16): staff deactivate accounts, and a deactivation or a password
-- reset by staff makes every token issued before it useless. `token_epoch` is copied into
-- every token at issue (claim `epoch`); a token whose epoch is not the account's current one
-- is refused (REST, socket handshake, renew, refresh) by the lookup of the user those already
-- make, so no query is added anywhere.
ALTER TABLE users ADD COLUMN is_active BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE users ADD COLUMN token_epoch BIGINT NOT NULL DEFAULT 0;

-- Settings staff change at run time (e.g. `guests`: "on"/"off"), read by every process.
CREATE TABLE server_settings (
    name       TEXT   PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
