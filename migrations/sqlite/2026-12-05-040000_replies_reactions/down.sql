DROP TABLE reactions;
ALTER TABLE messages DROP COLUMN reply_to;
