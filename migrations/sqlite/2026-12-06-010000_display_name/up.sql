-- Profiles (issue 15): the name a person shows beside their user name (1–64 characters,
-- checked by parley-domain's DisplayName); NULL when they chose none.
ALTER TABLE users ADD COLUMN display_name TEXT;
