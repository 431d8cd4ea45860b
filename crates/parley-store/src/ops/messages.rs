//! Messages: idempotent append, cursor paging, edit and delete (author or staff only).

use crate::error::{Result, StoreError};
use crate::ops::reactions::{Decorations, read_decorations};
use crate::rows::{FullMessageRow, MessageRow, full_message};
use crate::schema::{mentions, messages, rooms, users};
use crate::store::{Pools, Store, with_conn};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use parley_domain::{
    ClientMsgId, DisplayName, Message, MessageBody, MessageId, RoomId, RoomName, Timestamp, UserId,
    UserName,
};

/// A message to append. The names travel with the ids so the stored message can be returned
/// from a single `INSERT ... RETURNING`; the caller (the engine) already holds both, and must
/// pass the names that belong to the ids.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The room it is posted in.
    pub room_id: RoomId,
    /// That room's name.
    pub room: RoomName,
    /// The author.
    pub sender_id: UserId,
    /// The author's name.
    pub sender: UserName,
    /// The author's display name (from their session: no query per message).
    pub sender_display_name: Option<DisplayName>,
    /// The author is a guest (`User::is_guest`), carried into the stored message's frame.
    pub sender_is_guest: bool,
    /// The text.
    pub body: MessageBody,
    /// The client's id for idempotent retries.
    pub client_id: Option<ClientMsgId>,
    /// The message this one answers (the engine checked it is of the same room).
    pub reply_to: Option<MessageId>,
    /// The users it mentions (the engine resolved them: members of the room, not the
    /// author), stored with the message in the same transaction; empty (no allocation) for
    /// a message that mentions nobody.
    pub mentions: Vec<(UserId, UserName)>,
}

/// The result of [`Store::append_message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The stored message: new, or the one first stored under the same client id.
    pub message: Message,
    /// False when this was a retry of a message already stored (do not broadcast it again).
    pub created: bool,
}

/// Which slice of a room's history to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only messages older than this id. Alone (or with neither cursor): the newest page
    /// below it.
    pub before: Option<MessageId>,
    /// Only messages newer than this id; the page starts right after it (paging forward).
    pub after: Option<MessageId>,
    /// Page size; `None` means [`HistoryQuery::DEFAULT_LIMIT`], and it is capped at
    /// [`HistoryQuery::MAX_LIMIT`] (and at least 1).
    pub limit: Option<u32>,
}

impl HistoryQuery {
    /// Page size when none is asked for.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// The largest page served.
    pub const MAX_LIMIT: u32 = 100;

    /// The page size actually used.
    pub fn effective_limit(&self) -> u32 {
        self.limit
            .unwrap_or(Self::DEFAULT_LIMIT)
            .clamp(1, Self::MAX_LIMIT)
    }
}

/// One page of history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// Oldest to newest. Deleted messages appear as tombstones.
    pub messages: Vec<Message>,
    /// Whether more messages lie beyond this page in the direction read (older ones when
    /// paging back, newer ones when paging forward with `after`).
    pub has_more: bool,
}

/// Selects a message with its room's and author's names and the author's guest flag.
macro_rules! full_message_query {
    () => {
        messages::table
            .inner_join(rooms::table)
            .inner_join(users::table)
            .select((
                MessageRow::as_select(),
                rooms::name,
                users::username,
                users::is_guest,
                users::display_name,
            ))
    };
}

impl Store {
    /// Stores a message. Idempotent on `(sender, client_id)`: a retry returns the message
    /// first stored, with `created: false`, and never a duplicate. `NotFound` if the room or
    /// sender does not exist. Membership is the caller's check.
    ///
    /// Within a room, messages become visible in id order (on PostgreSQL a room's appends
    /// take a transaction-scoped advisory lock; SQLite writers are serialized anyway), so a
    /// client that pages with `after=<last id seen>` never skips one.
    pub async fn append_message(&self, new: &NewMessage) -> Result<Appended> {
        let now = Timestamp::now().millis();
        let client_id = new.client_id.as_ref().map(ClientMsgId::as_str);
        // The statement both backends run: insert, or find the first message stored under
        // this client id.
        macro_rules! insert_or_existing {
            ($conn:ident) => {{
                let inserted: Option<MessageRow> = diesel::insert_into(messages::table)
                    .values((
                        messages::room_id.eq(new.room_id.get()),
                        messages::sender_id.eq(new.sender_id.get()),
                        messages::body.eq(new.body.as_str()),
                        messages::client_id.eq(client_id),
                        messages::created_at.eq(now),
                        messages::reply_to.eq(new.reply_to.map(MessageId::get)),
                    ))
                    .on_conflict((messages::sender_id, messages::client_id))
                    .do_nothing()
                    .returning(MessageRow::as_returning())
                    .get_result($conn)
                    .await
                    .optional()
                    .map_err(|e| match StoreError::from(e) {
                        StoreError::NotFound(_) => StoreError::NotFound("room or sender"),
                        other => other,
                    })?;
                if let Some(row) = &inserted
                    && !new.mentions.is_empty()
                {
                    // One row per statement: SQLite has no multi-row insert in diesel here,
                    // and a message mentions few users.
                    for value in crate::ops::mentions::mention_values_of(row.id, new) {
                        diesel::insert_into(mentions::table)
                            .values(value)
                            .execute($conn)
                            .await?;
                    }
                }
                match inserted {
                    Some(row) => (
                        (
                            row,
                            new.room.as_str().to_owned(),
                            new.sender.as_str().to_owned(),
                            new.sender_is_guest,
                            new.sender_display_name
                                .as_ref()
                                .map(|d| d.as_str().to_owned()),
                        ),
                        true,
                    ),
                    None => {
                        let existing: FullMessageRow = full_message_query!()
                            .filter(messages::sender_id.eq(new.sender_id.get()))
                            .filter(messages::client_id.eq(client_id))
                            .first($conn)
                            .await?;
                        (existing, false)
                    }
                }
            }};
        }
        let (row, created): (FullMessageRow, bool) = match &*self.pools {
            Pools::Pg(pool) => {
                let mut obj = pool.get().await.map_err(StoreError::from)?;
                obj.transaction(async |conn| {
                    // Ids come from one sequence, and two concurrent inserts may commit out of
                    // id order; a reader paging with `after=` could then step past a message
                    // that becomes visible a moment later. Serializing a room's appends (a
                    // transaction-scoped advisory lock keyed by the room) makes commit order
                    // equal id order within the room. Other rooms are not held up.
                    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
                        .bind::<diesel::sql_types::BigInt, _>(new.room_id.get())
                        .execute(conn)
                        .await?;
                    Ok::<_, StoreError>(insert_or_existing!(conn))
                })
                .await?
            }
            Pools::Sqlite(pool) => {
                // SQLite writers are already serialized (one at a time, in order).
                let _writer = self.sqlite_writer.lock().await;
                let mut obj = pool.get().await.map_err(StoreError::from)?;
                let conn = &mut *obj;
                if new.mentions.is_empty() {
                    insert_or_existing!(conn)
                } else {
                    // The message and its mentions are stored together or not at all.
                    conn.transaction(async |conn| Ok::<_, StoreError>(insert_or_existing!(conn)))
                        .await?
                }
            }
        };
        let mut message = full_message(row)?;
        if created && !new.mentions.is_empty() {
            message.mentions = new.mentions.iter().map(|(_, name)| name.clone()).collect();
        }
        Ok(Appended { message, created })
    }

    /// The message with this id (a tombstone if deleted); `NotFound` if there is none.
    pub async fn message_by_id(&self, id: MessageId) -> Result<Message> {
        let row: FullMessageRow = with_conn!(self, |conn| {
            full_message_query!()
                .filter(messages::id.eq(id.get()))
                .first(conn)
                .await
                .map_err(|e| match StoreError::from(e) {
                    StoreError::NotFound(_) => StoreError::NotFound("message"),
                    other => other,
                })?
        });
        full_message(row)
    }

    /// A page of `room`'s history by cursor, returned oldest to newest. With `after`, the
    /// page starts right after it (bounded by `before` if given); otherwise it is the newest
    /// page below `before` (or the latest messages). An unknown room gives an empty page.
    pub async fn history(&self, room: RoomId, query: &HistoryQuery) -> Result<HistoryPage> {
        self.read_history(room, query, || {}).await
    }

    /// The newest `limit` messages of `room` ([`Store::history`] without cursors), for a
    /// socket that has just subscribed to the room: callers asking for the same page while
    /// one read of it still waits for a pooled connection share that read. In a storm of
    /// joins, a room's hundred joins then cost a few reads instead of a hundred queued ones.
    ///
    /// Nothing is missed by sharing: a caller only joins a read that has not started yet
    /// (that has no connection), so the page is read after the caller subscribed, and every
    /// message stored later reaches it live, as with a read of its own. If the caller that
    /// leads a read gives up before the read is done, the others read on their own.
    pub async fn join_history(&self, room: RoomId, limit: u32) -> Result<HistoryPage> {
        let query = HistoryQuery {
            limit: Some(limit),
            ..HistoryQuery::default()
        };
        let key = (room.get(), query.effective_limit());
        let (leader, mut page) = {
            let mut pending = self.pending_pages.lock().unwrap_or_else(|e| e.into_inner());
            match pending.get(&key) {
                Some(page) => (None, page.clone()),
                None => {
                    let (tx, rx) = tokio::sync::watch::channel(None);
                    pending.insert(key, rx.clone());
                    (Some(tx), rx)
                }
            }
        };
        let Some(leader) = leader else {
            // Cloned out at once: the borrow of the channel must not outlive this line.
            let shared = page
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|s| s.clone());
            return match shared {
                Some(result) => result,
                // The leader was dropped before reading (its client left).
                None => self.history(room, &query).await,
            };
        };
        // Closes the read to newcomers: once it has a connection (it starts), or if this
        // caller gives up before that (dropped), whichever comes first.
        let close = || {
            let mut pending = self.pending_pages.lock().unwrap_or_else(|e| e.into_inner());
            if pending.get(&key).is_some_and(|p| p.same_channel(&page)) {
                pending.remove(&key);
            }
        };
        let guard = CallOnDrop(Some(close));
        // Only the leader takes a turn: the others wait for its read, holding none.
        let turn = self.join_turn().await;
        let result = self.read_history(room, &query, close).await;
        drop(turn);
        drop(guard);
        leader.send_replace(Some(result.clone()));
        result
    }

    /// [`Store::history`], calling `started` once it holds a connection, before the read.
    async fn read_history(
        &self,
        room: RoomId,
        query: &HistoryQuery,
        started: impl FnOnce(),
    ) -> Result<HistoryPage> {
        let limit = query.effective_limit();
        // One extra row tells whether there is more.
        let fetch = i64::from(limit) + 1;
        let forward = query.after.is_some();
        // The page and its decorations on one connection: every `join` reads a page, and a
        // storm of joins would otherwise queue for the pool once per query.
        let (mut messages, has_more, found) = with_conn!(self, |conn| {
            started();
            let mut q = full_message_query!()
                .filter(messages::room_id.eq(room.get()))
                .into_boxed();
            if let Some(after) = query.after {
                q = q.filter(messages::id.gt(after.get()));
            }
            if let Some(before) = query.before {
                q = q.filter(messages::id.lt(before.get()));
            }
            q = if forward {
                q.order(messages::id.asc())
            } else {
                q.order(messages::id.desc())
            };
            let mut rows: Vec<FullMessageRow> = q.limit(fetch).load(conn).await?;
            let has_more = rows.len() > limit as usize;
            rows.truncate(limit as usize);
            if !forward {
                rows.reverse();
            }
            let messages = rows
                .into_iter()
                .map(full_message)
                .collect::<Result<Vec<_>>>()?;
            let wanted = Decorations::wanted(&messages, true);
            let found = read_decorations!(conn, &wanted);
            (messages, has_more, found)
        });
        found.apply(&mut messages)?;
        Ok(HistoryPage { messages, has_more })
    }

    /// Replaces a message's text. Only its author or a staff user may; `Forbidden` otherwise,
    /// `NotFound` if there is no such message (or editor), `Conflict` if it was deleted.
    pub async fn edit_message(
        &self,
        id: MessageId,
        editor: UserId,
        body: &MessageBody,
    ) -> Result<Message> {
        let current = self.message_by_id(id).await?;
        self.check_may_moderate(&current, editor).await?;
        let now = Timestamp::now().millis();
        let row: Option<MessageRow> = with_conn!(
            self,
            write | conn | {
                diesel::update(
                    messages::table
                        .find(id.get())
                        .filter(messages::deleted_at.is_null()),
                )
                .set((
                    messages::body.eq(body.as_str()),
                    messages::edited_at.eq(Some(now)),
                ))
                .returning(MessageRow::as_returning())
                .get_result(conn)
                .await
                .optional()?
            }
        );
        let mut edited = match row {
            Some(row) => row.into_message(
                current.room,
                current.sender,
                current.sender_display_name,
                current.guest,
            )?,
            None => return Err(StoreError::Conflict("message was deleted".to_owned())),
        };
        // The `edited` frame carries the whole record: its reply preview and reactions too.
        self.decorate(std::slice::from_mut(&mut edited)).await?;
        self.decorate_mentions(std::slice::from_mut(&mut edited))
            .await?;
        Ok(edited)
    }

    /// Deletes a message, leaving a tombstone (empty body, `deleted_at` set) so history keeps
    /// its place. Only its author or a staff user may; `Forbidden` otherwise, `NotFound` if
    /// there is no such message (or actor), `Conflict` if it is a tombstone already — also
    /// when a concurrent delete won, so exactly one caller deletes it (and announces it).
    pub async fn delete_message(&self, id: MessageId, actor: UserId) -> Result<Message> {
        self.delete_message_as(id, actor, false).await
    }

    /// [`Store::delete_message`], where `moderator` says the actor may delete anyone's message
    /// in its room (the engine decided: an owner of the room); otherwise author or staff.
    pub async fn delete_message_as(
        &self,
        id: MessageId,
        actor: UserId,
        moderator: bool,
    ) -> Result<Message> {
        let current = self.message_by_id(id).await?;
        if !moderator {
            self.check_may_moderate(&current, actor).await?;
        }
        if current.deleted_at.is_some() {
            return Err(StoreError::Conflict("message was deleted".to_owned()));
        }
        let now = Timestamp::now().millis();
        let row: Option<MessageRow> = with_conn!(
            self,
            write | conn | {
                diesel::update(
                    messages::table
                        .find(id.get())
                        .filter(messages::deleted_at.is_null()),
                )
                .set((messages::body.eq(""), messages::deleted_at.eq(Some(now))))
                .returning(MessageRow::as_returning())
                .get_result(conn)
                .await
                .optional()?
            }
        );
        match row {
            Some(row) => row.into_message(
                current.room,
                current.sender,
                current.sender_display_name,
                current.guest,
            ),
            None => Err(StoreError::Conflict("message was deleted".to_owned())),
        }
    }

    async fn check_may_moderate(&self, message: &Message, actor: UserId) -> Result<()> {
        if message.sender_id == actor {
            return Ok(());
        }
        if self.user_by_id(actor).await?.is_staff {
            Ok(())
        } else {
            Err(StoreError::Forbidden(
                "only the author or staff may change a message",
            ))
        }
    }
}

/// Calls its function when dropped (if it is still there).
struct CallOnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for CallOnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

#[cfg(test)]
#[cfg(feature = "testing")]
mod tests {
    use super::*;
    use crate::store::Pools;
    use crate::testing::{TestDb, plain_message, plain_user, public_room};
    use std::time::Duration;

    /// Holds every connection of the store's (one-connection) pool until dropped.
    async fn hold_the_pool(store: &Store) -> Box<dyn std::any::Any + Send> {
        match &*store.pools {
            Pools::Pg(pool) => Box::new(pool.get().await.unwrap()),
            Pools::Sqlite(pool) => Box::new(pool.get().await.unwrap()),
        }
    }

    fn pending(store: &Store) -> usize {
        store.pending_pages.lock().unwrap().len()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn joins_waiting_for_a_connection_share_one_history_read() {
        let opts = crate::StoreOptions {
            max_connections: 1,
            ..crate::StoreOptions::default()
        };
        let db = TestDb::sqlite_with(&opts).await.unwrap();
        let store: Store = (*db).clone();
        let user = plain_user(&store, "alice").await.unwrap();
        let room = public_room(&store, "lobby", &user).await.unwrap();
        store
            .append_message(&plain_message(&room, &user, "hello").unwrap())
            .await
            .unwrap();
        let expected = store
            .history(
                room.id,
                &HistoryQuery {
                    limit: Some(50),
                    ..HistoryQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(expected.messages.len(), 1);
        let join = |store: &Store| {
            let store = store.clone();
            tokio::spawn(async move { store.join_history(room.id, 50).await })
        };

        // Three joins while the pool is busy: one read, which the other two wait for.
        let held = hold_the_pool(&store).await;
        let joins = [join(&store), join(&store), join(&store)];
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(pending(&store), 1);
        drop(held);
        for j in joins {
            assert_eq!(j.await.unwrap().unwrap(), expected);
        }
        assert_eq!(pending(&store), 0, "a started read takes no newcomers");

        // The leading join gives up (its client left): the others read on their own.
        let held = hold_the_pool(&store).await;
        let leader = join(&store);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let followers = [join(&store), join(&store)];
        tokio::time::sleep(Duration::from_millis(50)).await;
        leader.abort();
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
        for j in followers {
            assert_eq!(j.await.unwrap().unwrap(), expected);
        }
        assert_eq!(pending(&store), 0);
    }
}
