DROP TABLE room_mutes;
DROP INDEX room_bans_user_idx;
DROP TABLE room_bans;
ALTER TABLE rooms DROP COLUMN read_only;
