-- Accounts signed in through an external OpenID Connect provider (e.g. Google): the
-- provider's (issuer, subject) pair names one Parley user for good, whatever the email says.
CREATE TABLE external_identities (
    issuer     TEXT   NOT NULL,
    subject    TEXT   NOT NULL,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX external_identities_user_idx ON external_identities (user_id);
