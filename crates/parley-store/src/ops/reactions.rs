//! Replies and reactions (issue 17): emoji reactions on messages, and [`Store::decorate`],
//! which fills in the reply previews and reaction summaries of messages about to be served.

use crate::error::{Result, StoreError};
use crate::schema::{messages, reactions};
use crate::store::{Pools, Store, with_conn};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use parley_domain::{
    Emoji, Message, MessageId, ReactionSummary, ReplyPreview, Timestamp, UserId, UserName,
};
use std::collections::HashMap;

/// What [`Store::add_reaction`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReactionAdded {
    /// Stored; `count` users now react with this emoji.
    Added {
        /// Users reacting with the emoji, this one included.
        count: u32,
    },
    /// The user had already reacted with this emoji: nothing changed.
    Unchanged {
        /// Users reacting with the emoji.
        count: u32,
    },
    /// Refused: the message already has `max_distinct` other emoji.
    TooMany,
}

impl Store {
    /// Adds `user`'s `emoji` reaction to `message`, unless the message already carries
    /// `max_distinct` different emoji and this is not one of them. `NotFound` if there is no
    /// such message, `Conflict` if it was deleted. Room rules are the caller's (the engine's).
    ///
    /// The check and the insert are one step: on PostgreSQL the message row is locked
    /// (`FOR UPDATE`) for the transaction, on SQLite writers are serialized anyway, so two
    /// concurrent new emoji cannot both take the last place.
    pub async fn add_reaction(
        &self,
        message: MessageId,
        user: UserId,
        emoji: &Emoji,
        max_distinct: usize,
    ) -> Result<ReactionAdded> {
        let now = Timestamp::now().millis();
        macro_rules! add {
            ($conn:ident) => {{
                let deleted: Option<Option<i64>> = messages::table
                    .find(message.get())
                    .select(messages::deleted_at)
                    .first($conn)
                    .await
                    .optional()?;
                match deleted {
                    None => return Err(StoreError::NotFound("message")),
                    Some(Some(_)) => {
                        return Err(StoreError::Conflict("message was deleted".to_owned()));
                    }
                    Some(None) => {}
                }
                let used: Vec<String> = reactions::table
                    .filter(reactions::message_id.eq(message.get()))
                    .select(reactions::emoji)
                    .distinct()
                    .load($conn)
                    .await?;
                if used.len() >= max_distinct && !used.iter().any(|e| e == emoji.as_str()) {
                    return Ok(ReactionAdded::TooMany);
                }
                let inserted = diesel::insert_into(reactions::table)
                    .values((
                        reactions::message_id.eq(message.get()),
                        reactions::user_id.eq(user.get()),
                        reactions::emoji.eq(emoji.as_str()),
                        reactions::created_at.eq(now),
                    ))
                    .on_conflict((reactions::message_id, reactions::user_id, reactions::emoji))
                    .do_nothing()
                    .execute($conn)
                    .await?;
                let count: i64 = reactions::table
                    .filter(reactions::message_id.eq(message.get()))
                    .filter(reactions::emoji.eq(emoji.as_str()))
                    .count()
                    .get_result($conn)
                    .await?;
                let count = u32::try_from(count).unwrap_or(u32::MAX);
                Ok(if inserted > 0 {
                    ReactionAdded::Added { count }
                } else {
                    ReactionAdded::Unchanged { count }
                })
            }};
        }
        match &*self.pools {
            Pools::Pg(pool) => {
                let mut obj = pool.get().await.map_err(StoreError::from)?;
                obj.transaction(async |conn| {
                    diesel::sql_query("SELECT id FROM messages WHERE id = $1 FOR UPDATE")
                        .bind::<diesel::sql_types::BigInt, _>(message.get())
                        .execute(conn)
                        .await?;
                    add!(conn)
                })
                .await
            }
            Pools::Sqlite(pool) => {
                let _writer = self.sqlite_writer.lock().await;
                let mut obj = pool.get().await.map_err(StoreError::from)?;
                let conn = &mut *obj;
                add!(conn)
            }
        }
    }

    /// Removes `user`'s `emoji` reaction from `message`. Returns whether there was one, and
    /// how many users still react with that emoji.
    pub async fn remove_reaction(
        &self,
        message: MessageId,
        user: UserId,
        emoji: &Emoji,
    ) -> Result<(bool, u32)> {
        let (removed, count) = with_conn!(
            self,
            write | conn | {
                let removed = diesel::delete(
                    reactions::table
                        .filter(reactions::message_id.eq(message.get()))
                        .filter(reactions::user_id.eq(user.get()))
                        .filter(reactions::emoji.eq(emoji.as_str())),
                )
                .execute(conn)
                .await?;
                let count: i64 = reactions::table
                    .filter(reactions::message_id.eq(message.get()))
                    .filter(reactions::emoji.eq(emoji.as_str()))
                    .count()
                    .get_result(conn)
                    .await?;
                (removed > 0, count)
            }
        );
        Ok((removed, u32::try_from(count).unwrap_or(u32::MAX)))
    }

    /// Fills in what the message rows alone do not hold: each reply's preview of its
    /// original (the row only knows the id) and each live message's reactions. At most two
    /// queries for the whole slice, on one connection, and none when no message is a reply
    /// and `messages` is empty. Tombstones show no reactions.
    pub async fn decorate(&self, messages: &mut [Message]) -> Result<()> {
        let wanted = Decorations::wanted(messages, false);
        if wanted.is_empty() {
            return Ok(());
        }
        let found = with_conn!(self, |conn| read_decorations!(conn, &wanted));
        found.apply(messages)
    }
}

/// The ids of the messages whose decorations are read (see [`Decorations`]).
#[derive(Debug, Default)]
pub(crate) struct Wanted {
    /// The originals of the replies: their previews.
    pub originals: Vec<i64>,
    /// The live messages: their reactions.
    pub live: Vec<i64>,
    /// The live messages that may mention someone: their mentions (empty unless asked).
    pub mentioning: Vec<i64>,
}

impl Wanted {
    /// Nothing to read.
    pub fn is_empty(&self) -> bool {
        self.originals.is_empty() && self.live.is_empty() && self.mentioning.is_empty()
    }
}

/// What the message rows alone do not hold, as read by [`read_decorations!`]: reply
/// previews' rows (id, sender, body, deleted at), reactions (message, emoji, user) in the
/// order given, and mentions (message, user name) ordered by message then name.
#[derive(Debug, Default)]
pub(crate) struct Decorations {
    pub previews: Vec<(i64, String, String, Option<i64>)>,
    pub reactions: Vec<(i64, String, String)>,
    pub mentions: Vec<(i64, String)>,
}

impl Decorations {
    /// The ids to read for `messages`; mentions only with `mentions`.
    pub fn wanted(messages: &[Message], mentions: bool) -> Wanted {
        let live = messages.iter().filter(|m| m.deleted_at.is_none());
        Wanted {
            originals: messages
                .iter()
                .filter_map(|m| m.reply_to.as_ref().map(|r| r.id.get()))
                .collect(),
            live: live.clone().map(|m| m.id.get()).collect(),
            mentioning: if mentions {
                live.filter(|m| m.body.contains('@'))
                    .map(|m| m.id.get())
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// Fills `messages` in: previews of every reply (pending where the original was not
    /// found), reaction summaries, mentions.
    pub fn apply(self, messages: &mut [Message]) -> Result<()> {
        let user_name =
            |raw: &str| UserName::parse(raw).map_err(|e| StoreError::corrupt("user name", e));
        if messages.iter().any(|m| m.reply_to.is_some()) {
            let mut previews = HashMap::with_capacity(self.previews.len());
            for (id, sender, body, deleted_at) in self.previews {
                previews.insert(
                    id,
                    ReplyPreview::of(
                        MessageId(id),
                        user_name(&sender)?,
                        &body,
                        deleted_at.is_some(),
                    ),
                );
            }
            for reply in messages.iter_mut().filter_map(|m| m.reply_to.as_mut()) {
                *reply = previews
                    .get(&reply.id.get())
                    .cloned()
                    .unwrap_or_else(|| ReplyPreview::pending(reply.id));
            }
        }
        if self.reactions.is_empty() && self.mentions.is_empty() {
            return Ok(());
        }
        let index: HashMap<i64, usize> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.get(), i))
            .collect();
        for (message_id, emoji, user) in self.reactions {
            let Some(&i) = index.get(&message_id) else {
                continue;
            };
            let summaries = &mut messages[i].reactions;
            let at = match summaries.iter().position(|s| s.emoji.as_str() == emoji) {
                Some(at) => at,
                None => {
                    let emoji =
                        Emoji::parse(&emoji).map_err(|e| StoreError::corrupt("emoji", e))?;
                    summaries.push(ReactionSummary {
                        emoji,
                        count: 0,
                        users: Vec::new(),
                    });
                    summaries.len() - 1
                }
            };
            let summary = &mut summaries[at];
            summary.count = summary.count.saturating_add(1);
            if summary.users.len() < ReactionSummary::MAX_USERS {
                summary.users.push(user_name(&user)?);
            }
        }
        for (message_id, name) in self.mentions {
            if let Some(&i) = index.get(&message_id) {
                messages[i].mentions.push(user_name(&name)?);
            }
        }
        Ok(())
    }
}

/// Reads the [`Decorations`] of a [`Wanted`] on `$conn` (at most three queries, none for an
/// empty list): inside a `with_conn!` body, so that a history page and its decorations
/// hold one pooled connection once instead of queueing for one per query.
macro_rules! read_decorations {
    ($conn:ident, $wanted:expr) => {{
        use $crate::schema::{mentions, messages, reactions, users};
        let wanted: &$crate::ops::reactions::Wanted = $wanted;
        let mut found = $crate::ops::reactions::Decorations::default();
        if !wanted.originals.is_empty() {
            found.previews = messages::table
                .inner_join(users::table)
                .filter(messages::id.eq_any(&wanted.originals))
                .select((
                    messages::id,
                    users::username,
                    messages::body,
                    messages::deleted_at,
                ))
                .load($conn)
                .await?;
        }
        if !wanted.live.is_empty() {
            found.reactions = reactions::table
                .inner_join(users::table)
                .filter(reactions::message_id.eq_any(&wanted.live))
                .order(reactions::id.asc())
                .select((reactions::message_id, reactions::emoji, users::username))
                .load($conn)
                .await?;
        }
        if !wanted.mentioning.is_empty() {
            found.mentions = mentions::table
                .inner_join(users::table.on(users::id.eq(mentions::user_id)))
                .filter(mentions::message_id.eq_any(&wanted.mentioning))
                .order((mentions::message_id.asc(), users::username.asc()))
                .select((mentions::message_id, users::username))
                .load($conn)
                .await?;
        }
        found
    }};
}
pub(crate) use read_decorations;
