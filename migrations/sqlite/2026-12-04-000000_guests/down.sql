DROP INDEX users_guest_idx;
ALTER TABLE users DROP COLUMN is_guest;
