DROP TABLE server_settings;
ALTER TABLE users DROP COLUMN token_epoch;
ALTER TABLE users DROP COLUMN is_active;
