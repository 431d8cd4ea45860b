//! Mentions (issue 17): who a message mentions, stored with the message (the batch insert and
//! [`Store::append_message`] write the rows in the message's own transaction), shown in its
//! record, and counted per room against each member's read marker (`unread_mentions`).

use crate::error::{Result, StoreError};
use crate::ops::messages::NewMessage;
use crate::schema::{memberships, mentions, users};
use crate::store::{Store, with_conn};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use parley_domain::{Message, RoomId, UserId, UserName};
use std::collections::HashMap;

/// One `mentions` row as diesel insert values: (user, room, message).
pub(crate) type MentionValue = (
    diesel::dsl::Eq<mentions::user_id, i64>,
    diesel::dsl::Eq<mentions::room_id, i64>,
    diesel::dsl::Eq<mentions::message_id, i64>,
);

/// The `mentions` rows of a stored message: (user, room, message).
pub(crate) fn mention_values_of(
    message_id: i64,
    new: &NewMessage,
) -> Vec<crate::ops::mentions::MentionValue> {
    new.mentions
        .iter()
        .map(|(user, _)| {
            (
                mentions::user_id.eq(user.get()),
                mentions::room_id.eq(new.room_id.get()),
                mentions::message_id.eq(message_id),
            )
        })
        .collect()
}

impl Store {
    /// Which of `names` may be mentioned in `room` by `author`: the active members of the
    /// room among them, the author left out, by name (as history lists them). One query.
    pub async fn mention_targets(
        &self,
        room: RoomId,
        author: UserId,
        names: &[UserName],
    ) -> Result<Vec<(UserId, UserName)>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<&str> = names.iter().map(UserName::as_str).collect();
        let found: Vec<(i64, String)> = with_conn!(self, |conn| {
            memberships::table
                .inner_join(users::table)
                .filter(memberships::room_id.eq(room.get()))
                .filter(users::username.eq_any(&wanted))
                .filter(users::id.ne(author.get()))
                .filter(users::is_active.eq(true))
                .select((users::id, users::username))
                .load(conn)
                .await?
        });
        let found: HashMap<String, i64> = found.into_iter().map(|(id, name)| (name, id)).collect();
        let mut targets: Vec<(UserId, UserName)> = names
            .iter()
            .filter_map(|name| {
                found
                    .get(name.as_str())
                    .map(|&id| (UserId(id), name.clone()))
            })
            .collect();
        targets.sort_unstable_by(|a, b| a.1.cmp(&b.1));
        Ok(targets)
    }

    /// Fills in `mentions` of the live messages whose text holds an `@` (no other message
    /// can mention anyone): one query for the slice, none when no message has an `@`.
    pub async fn decorate_mentions(&self, messages: &mut [Message]) -> Result<()> {
        let ids: Vec<i64> = messages
            .iter()
            .filter(|m| m.deleted_at.is_none() && m.body.contains('@'))
            .map(|m| m.id.get())
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let rows: Vec<(i64, String)> = with_conn!(self, |conn| {
            mentions::table
                .inner_join(users::table.on(users::id.eq(mentions::user_id)))
                .filter(mentions::message_id.eq_any(&ids))
                .order((mentions::message_id.asc(), users::username.asc()))
                .select((mentions::message_id, users::username))
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
        for (message_id, name) in rows {
            if let Some(&i) = index.get(&message_id) {
                let name =
                    UserName::parse(&name).map_err(|e| StoreError::corrupt("user name", e))?;
                messages[i].mentions.push(name);
            }
        }
        Ok(())
    }
}
