//! Replies and reactions (issue 17): emoji reactions on messages, and [`Store::decorate`],
//! which fills in the reply previews and reaction summaries of messages about to be served.

use crate::error::{Result, StoreError};
use crate::schema::{messages, reactions, users};
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
    /// queries for the whole slice, and none when no message is a reply and `messages` is
    /// empty. Tombstones show no reactions.
    pub async fn decorate(&self, messages: &mut [Message]) -> Result<()> {
        let originals: Vec<i64> = messages
            .iter()
            .filter_map(|m| m.reply_to.as_ref().map(|r| r.id.get()))
            .collect();
        if !originals.is_empty() {
            let found: Vec<(i64, String, String, Option<i64>)> = with_conn!(self, |conn| {
                messages::table
                    .inner_join(users::table)
                    .filter(messages::id.eq_any(&originals))
                    .select((
                        messages::id,
                        users::username,
                        messages::body,
                        messages::deleted_at,
                    ))
                    .load(conn)
                    .await?
            });
            let mut previews = HashMap::with_capacity(found.len());
            for (id, sender, body, deleted_at) in found {
                let sender =
                    UserName::parse(&sender).map_err(|e| StoreError::corrupt("user name", e))?;
                previews.insert(
                    id,
                    ReplyPreview::of(MessageId(id), sender, &body, deleted_at.is_some()),
                );
            }
            for reply in messages.iter_mut().filter_map(|m| m.reply_to.as_mut()) {
                *reply = previews
                    .get(&reply.id.get())
                    .cloned()
                    .unwrap_or_else(|| ReplyPreview::pending(reply.id));
            }
        }
        let live: Vec<i64> = messages
            .iter()
            .filter(|m| m.deleted_at.is_none())
            .map(|m| m.id.get())
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        let rows: Vec<(i64, String, String)> = with_conn!(self, |conn| {
            reactions::table
                .inner_join(users::table)
                .filter(reactions::message_id.eq_any(&live))
                .order(reactions::id.asc())
                .select((reactions::message_id, reactions::emoji, users::username))
                .load(conn)
                .await?
        });
        if rows.is_empty() {
            return Ok(());
        }
        let index: HashMap<i64, usize> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.get(), i))
            .collect();
        for (message_id, emoji, user) in rows {
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
                summary
                    .users
                    .push(UserName::parse(&user).map_err(|e| StoreError::corrupt("user name", e))?);
            }
        }
        Ok(())
    }
}
