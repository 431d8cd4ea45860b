DROP TABLE revoked_tokens;
DROP TABLE messages;
DROP TABLE memberships;
DROP TABLE rooms;
DROP TABLE users;
