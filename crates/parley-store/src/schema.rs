//! The diesel schema, shared by both backends: ids are `BigInt` (`BIGSERIAL` on PostgreSQL,
//! `INTEGER PRIMARY KEY` on SQLite) and timestamps `BigInt` milliseconds, so one set of
//! `table!`s describes `migrations/postgres` and `migrations/sqlite` alike. Keep the three in
//! step (the conformance suite runs every query on both backends).
//!
//! Full-text search is not described here: PostgreSQL indexes `to_tsvector('simple', body)`
//! (an expression index, no column) and SQLite keeps the FTS5 table `messages_fts` (and its
//! shadow tables) by triggers; `ops::search` writes both queries by hand.

diesel::table! {
    /// Accounts.
    users (id) {
        /// Primary key.
        id -> BigInt,
        /// Unique, lower-case handle.
        username -> Text,
        /// Optional contact address.
        email -> Nullable<Text>,
        /// bcrypt hash.
        password_hash -> Text,
        /// Staff may moderate anything.
        is_staff -> Bool,
        /// Millis since the epoch.
        created_at -> BigInt,
        /// Millis since the epoch.
        last_login -> Nullable<BigInt>,
        /// A guest identity (no password, no refresh token), not an account.
        is_guest -> Bool,
        /// False once staff deactivated the account: no logins, every token refused.
        is_active -> Bool,
        /// Copied into every token at issue; raised by a deactivation or a password reset,
        /// which makes every token issued before useless.
        token_epoch -> BigInt,
        /// The name shown beside the user name (1–64 characters); NULL when none.
        display_name -> Nullable<Text>,
    }
}

diesel::table! {
    /// Rooms, group and direct.
    rooms (id) {
        /// Primary key.
        id -> BigInt,
        /// Unique name (`dm.{low}.{high}` for direct rooms).
        name -> Text,
        /// `public`, `private` or `direct`.
        kind -> Text,
        /// Creator (NULL once that account is deleted).
        creator_id -> Nullable<BigInt>,
        /// One line about the room.
        topic -> Text,
        /// Millis since the epoch.
        created_at -> BigInt,
        /// Lower member id of a direct room.
        direct_low -> Nullable<BigInt>,
        /// Higher member id of a direct room.
        direct_high -> Nullable<BigInt>,
        /// Only owners and staff may post.
        read_only -> Bool,
    }
}

diesel::table! {
    /// Who belongs to which room.
    memberships (room_id, user_id) {
        /// The room.
        room_id -> BigInt,
        /// The member.
        user_id -> BigInt,
        /// `owner` or `member`.
        role -> Text,
        /// Millis since the epoch.
        joined_at -> BigInt,
        /// Newest message id marked read.
        last_read -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Messages; a deleted one stays as a tombstone.
    messages (id) {
        /// Primary key; orders a room's history.
        id -> BigInt,
        /// The room.
        room_id -> BigInt,
        /// The author.
        sender_id -> BigInt,
        /// The text (empty once deleted).
        body -> Text,
        /// The client's id for idempotent retries, unique per sender.
        client_id -> Nullable<Text>,
        /// Millis since the epoch.
        created_at -> BigInt,
        /// Millis since the epoch.
        edited_at -> Nullable<BigInt>,
        /// Millis since the epoch.
        deleted_at -> Nullable<BigInt>,
        /// The message this one answers (same room), if any.
        reply_to -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Emoji reactions: one row per (message, user, emoji).
    reactions (id) {
        /// Primary key; orders a message's reactions by first use.
        id -> BigInt,
        /// The message reacted to.
        message_id -> BigInt,
        /// Who reacted.
        user_id -> BigInt,
        /// The reaction (`Emoji`).
        emoji -> Text,
        /// Millis since the epoch.
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Mentions (`@name`): one row per (mentioned user, message), written with the message.
    mentions (user_id, room_id, message_id) {
        /// Who was mentioned.
        user_id -> BigInt,
        /// The message's room (copied, so unread mentions count per room by the key).
        room_id -> BigInt,
        /// The message.
        message_id -> BigInt,
    }
}

diesel::table! {
    /// Revoked refresh tokens (and token families), kept until they would have expired.
    revoked_tokens (jti) {
        /// The token's `jti` or a family id.
        jti -> Text,
        /// Millis since the epoch; past this the row may be pruned.
        expires_at -> BigInt,
    }
}

diesel::table! {
    /// Accounts signed in through an external OpenID Connect provider.
    external_identities (issuer, subject) {
        /// The provider's issuer URL (`iss`).
        issuer -> Text,
        /// The user's id at that provider (`sub`).
        subject -> Text,
        /// The Parley account.
        user_id -> BigInt,
        /// Millis since the epoch.
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Guest names staff have banned (the chosen name, lower-case).
    guest_bans (name) {
        /// The banned name.
        name -> Text,
        /// Millis since the epoch.
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Every staff and room-owner action (names kept as text: entries outlive their targets).
    audit_log (id) {
        /// Primary key; orders the log.
        id -> BigInt,
        /// Who acted (NULL once that account is deleted).
        actor_id -> Nullable<BigInt>,
        /// Who acted, by name.
        actor_name -> Text,
        /// `AuditAction`'s stored name.
        action -> Text,
        /// The user acted on, by name.
        target_user -> Nullable<Text>,
        /// The room acted on, by name.
        target_room -> Nullable<Text>,
        /// Anything else the action names (a message id, a role, `on`/`off`).
        detail -> Nullable<Text>,
        /// Why, if the actor said.
        reason -> Nullable<Text>,
        /// Millis since the epoch.
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Settings staff change at run time (e.g. `guests`), read by every process.
    server_settings (name) {
        /// The setting's name.
        name -> Text,
        /// Its value, as text.
        value -> Text,
        /// Millis since the epoch.
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// Users banned from a room (they may not join, read or post; not a member any more).
    room_bans (room_id, user_id) {
        /// The room.
        room_id -> BigInt,
        /// The banned user.
        user_id -> BigInt,
        /// Why, if the banner said.
        reason -> Nullable<Text>,
        /// Who banned them (NULL once that account is deleted).
        banned_by -> Nullable<BigInt>,
        /// Millis since the epoch.
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Users muted in a room (they may read, not post).
    room_mutes (room_id, user_id) {
        /// The room.
        room_id -> BigInt,
        /// The muted user.
        user_id -> BigInt,
        /// Millis since the epoch when the mute ends; NULL: until lifted.
        until -> Nullable<BigInt>,
        /// Why, if the moderator said.
        reason -> Nullable<Text>,
        /// Who muted them (NULL once that account is deleted).
        muted_by -> Nullable<BigInt>,
        /// Millis since the epoch.
        created_at -> BigInt,
    }
}

diesel::joinable!(external_identities -> users (user_id));
diesel::joinable!(memberships -> rooms (room_id));
diesel::joinable!(memberships -> users (user_id));
diesel::joinable!(messages -> rooms (room_id));
diesel::joinable!(messages -> users (sender_id));
diesel::joinable!(reactions -> messages (message_id));
diesel::joinable!(mentions -> messages (message_id));
diesel::joinable!(reactions -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    rooms,
    memberships,
    messages,
    revoked_tokens,
    external_identities,
    guest_bans,
    audit_log,
    server_settings,
    room_bans,
    room_mutes,
    reactions,
    mentions,
);
