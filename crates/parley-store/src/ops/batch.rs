//! Group commit for message appends: [`AppendBatcher`] gathers appends that arrive while a
//! write is in flight and stores them with one statement (PostgreSQL: one prepared
//! `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING RETURNING`, see
//! [`INSERT_BATCH_PG`]; SQLite: one transaction), so a busy server
//! pays one round trip and one commit per batch instead of per message. Same contract as
//! [`Store::append_message`], idempotency included.

use crate::error::{Result, StoreError};
use crate::ops::messages::{Appended, NewMessage};
use crate::rows::MessageRow;
use crate::schema::mentions;
use crate::store::{Pools, Store};
use diesel::ExpressionMethods;
use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Nullable, Text, Untyped};
use diesel_async::{AsyncConnection, RunQueryDsl};
use parley_domain::{ClientMsgId, MessageId, Timestamp};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Mutex, mpsc, oneshot};

/// Messages written together, in this order (one caller's consecutive sends), and where
/// their results go.
type Request = (Vec<NewMessage>, oneshot::Sender<Vec<Result<Appended>>>);

/// A handle to the group-commit writers. Cheap to clone; the writer tasks stop when the last
/// handle is dropped (after finishing what they hold).
#[derive(Clone, Debug)]
pub struct AppendBatcher {
    /// Where appends queue for the writer tasks.
    tx: mpsc::Sender<Request>,
    /// For the direct path when the batcher is quiet.
    store: Store,
    /// Appends under way through this batcher (direct or queued).
    in_flight: Arc<AtomicUsize>,
    /// Below this many appends under way, append directly (see [`BatchOptions::direct_below`]).
    direct_below: usize,
}

/// Takes its appends off the in-flight count when they finish or are abandoned.
struct InFlight<'a>(&'a AtomicUsize, usize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::Relaxed);
    }
}

/// How an [`AppendBatcher`] batches.
#[derive(Debug, Clone, Copy)]
pub struct BatchOptions {
    /// Most messages written by one statement (a batch stops taking requests once it holds
    /// this many; one [`AppendBatcher::append_all`] group is never split, so it may overshoot).
    pub max_batch: usize,
    /// Writer tasks, i.e. batches in flight at once (each holds a pooled connection while
    /// writing).
    pub writers: usize,
    /// Appends that may wait in the queue before callers wait to enqueue (back-pressure).
    pub queue: usize,
    /// With fewer appends than this under way, an append skips the queue and is written on
    /// its own: batching only pays under load, and the hand-off to a writer task costs
    /// latency when there is nothing to batch with. 0 always batches.
    pub direct_below: usize,
}

impl Default for BatchOptions {
    /// The one default of every setting (the engine and the server's settings use it): up
    /// to 128 messages per commit, 4 writer tasks, a queue of 4096, and a message written
    /// on its own (skipping the queue) only when no other is being stored — a chat server
    /// with many senders should batch as soon as two messages meet, because in one busy
    /// room each direct write holds the room's append order for a whole commit.
    fn default() -> Self {
        Self {
            max_batch: 128,
            writers: 4,
            queue: 4096,
            direct_below: 1,
        }
    }
}

impl AppendBatcher {
    /// Starts the writer tasks on the current tokio runtime.
    pub fn spawn(store: Store, opts: BatchOptions) -> Self {
        let (tx, rx) = mpsc::channel::<Request>(opts.queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let max_batch = opts.max_batch.max(1);
        for _ in 0..opts.writers.max(1) {
            let rx = Arc::clone(&rx);
            let store = store.clone();
            tokio::spawn(async move {
                loop {
                    // Take whatever has queued up, waiting only for the first.
                    let (batch, size) = {
                        let mut rx = rx.lock().await;
                        let Some(first) = rx.recv().await else { break };
                        let mut size = first.0.len();
                        let mut batch = vec![first];
                        while size < max_batch {
                            match rx.try_recv() {
                                Ok(req) => {
                                    size += req.0.len();
                                    batch.push(req);
                                }
                                Err(_) => break,
                            }
                        }
                        (batch, size)
                    };
                    // Sizes and times of group commits (`parley_store_batch_size`,
                    // `parley_store_batch_seconds`): how much one commit carries, and costs.
                    metrics::histogram!("parley_store_batch_size").record(size as f64);
                    let started = std::time::Instant::now();
                    store.write_batch(batch).await;
                    metrics::histogram!("parley_store_batch_seconds")
                        .record(started.elapsed().as_secs_f64());
                }
            });
        }
        Self {
            tx,
            store,
            in_flight: Arc::new(AtomicUsize::new(0)),
            direct_below: opts.direct_below,
        }
    }

    /// Appends a message through the batcher: the same result as
    /// [`Store::append_message`], usually sharing a commit with concurrent appends.
    pub async fn append(&self, message: NewMessage) -> Result<Appended> {
        self.append_all(vec![message])
            .await
            .pop()
            .unwrap_or_else(|| {
                Err(StoreError::Internal(
                    "append batcher lost a reply".to_owned(),
                ))
            })
    }

    /// Appends several messages, in order, through the batcher: one result per message, as
    /// from [`Store::append_messages`]. The messages stay together in one batch, so their ids
    /// follow their order here even with several writers (separate [`AppendBatcher::append`]
    /// calls may be written by different writers and commit in either order). This is how a
    /// connection with several sends waiting has them all stored at once, in order.
    pub async fn append_all(&self, messages: Vec<NewMessage>) -> Vec<Result<Appended>> {
        if messages.is_empty() {
            return Vec::new();
        }
        let count = messages.len();
        let busy = self.in_flight.fetch_add(count, Ordering::Relaxed);
        let _in_flight = InFlight(&self.in_flight, count);
        if busy < self.direct_below {
            return self.store.append_messages(&messages).await;
        }
        let (reply, answer) = oneshot::channel();
        let failed = |why: &str| {
            (0..count)
                .map(|_| Err(StoreError::Internal(why.to_owned())))
                .collect()
        };
        if self.tx.send((messages, reply)).await.is_err() {
            return failed("append batcher stopped");
        }
        answer
            .await
            .unwrap_or_else(|_| failed("append batcher dropped a request"))
    }
}

/// The PostgreSQL batch append: one statement, so one round trip and its own transaction
/// (no BEGIN and COMMIT trips), with the same text for every batch size (arrays, not a
/// VALUES row per message), so it is prepared once per connection and reused (see
/// [`InsertBatchPg`]). The `locks` CTE takes the rooms' advisory locks (`$1`, sorted) before
/// any row is inserted: the insert waits on it through the one-time filter, and the locks
/// last until the implicit commit. Rows go in array order (`ORDER BY n`), so ids and
/// RETURNING follow the batch's order. Each `$n` is where [`InsertBatchPg`] puts its binds.
const INSERT_BATCH_PG: [&str; 8] = [
    "WITH locks AS MATERIALIZED (\
        SELECT pg_advisory_xact_lock(room) FROM unnest(",
    "::bigint[]) WITH ORDINALITY AS l(room, n) \
        ORDER BY n) \
    INSERT INTO messages (room_id, sender_id, body, client_id, created_at, reply_to) \
    SELECT m.room_id, m.sender_id, m.body, m.client_id, ",
    ", m.reply_to \
    FROM unnest(",
    "::bigint[], ",
    "::bigint[], ",
    "::text[], ",
    "::text[], ",
    "::bigint[]) \
        WITH ORDINALITY AS m(room_id, sender_id, body, client_id, reply_to, n) \
    WHERE (SELECT count(*) FROM locks) >= 0 \
    ORDER BY m.n \
    ON CONFLICT (sender_id, client_id) DO NOTHING \
    RETURNING id, room_id, sender_id, body, client_id, created_at, edited_at, deleted_at, reply_to",
];

/// [`INSERT_BATCH_PG`] with its binds, as a query diesel prepares once per pooled connection
/// and then only binds and executes. Through `diesel::sql_query` the statement was parsed
/// and planned again for every batch (`sql_query` is never cached): ≈ 0.2 ms of
/// PostgreSQL's CPU per batch (`EXPLAIN ANALYZE` planning time, 40 rows), on the cores the
/// server and PostgreSQL share.
struct InsertBatchPg<'a> {
    /// The batch's rooms, sorted and each once: the advisory locks, in that order.
    rooms: Vec<i64>,
    room_ids: Vec<i64>,
    senders: Vec<i64>,
    bodies: Vec<&'a str>,
    client_ids: Vec<Option<&'a str>>,
    reply_to: Vec<Option<i64>>,
    now: i64,
}

/// The statement cache's key for [`InsertBatchPg`] (its text never changes).
struct InsertBatchPgId;

impl QueryId for InsertBatchPg<'_> {
    type QueryId = InsertBatchPgId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for InsertBatchPg<'_> {
    // Rows are read by column name, as `sql_query` reads them (`MessageRow: QueryableByName`).
    type SqlType = Untyped;
}

impl QueryFragment<Pg> for InsertBatchPg<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let [
            lock,
            select,
            from,
            senders,
            bodies,
            client_ids,
            reply_to,
            rest,
        ] = INSERT_BATCH_PG;
        out.push_sql(lock);
        out.push_bind_param::<Array<BigInt>, _>(&self.rooms)?;
        out.push_sql(select);
        out.push_bind_param::<BigInt, _>(&self.now)?;
        out.push_sql(from);
        out.push_bind_param::<Array<BigInt>, _>(&self.room_ids)?;
        out.push_sql(senders);
        out.push_bind_param::<Array<BigInt>, _>(&self.senders)?;
        out.push_sql(bodies);
        out.push_bind_param::<Array<Text>, _>(&self.bodies)?;
        out.push_sql(client_ids);
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.client_ids)?;
        out.push_sql(reply_to);
        out.push_bind_param::<Array<Nullable<BigInt>>, _>(&self.reply_to)?;
        out.push_sql(rest);
        Ok(())
    }
}

impl Store {
    /// Appends several messages with one statement per 1,000 and returns one result per
    /// message, in order. Idempotent per message like [`Store::append_message`]. If a batch
    /// is refused for one message's sake (say it names a deleted room), each message is
    /// retried alone, so only the faulty ones fail; if the database is unavailable, every
    /// message gets that error at once.
    pub async fn append_messages(&self, batch: &[NewMessage]) -> Vec<Result<Appended>> {
        let mut out = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(1000) {
            match self.insert_batch(chunk).await {
                Ok(results) => out.extend(results),
                // The statement (or SQLite transaction) is atomic: nothing was written.
                Err(
                    err @ (StoreError::NotFound(_)
                    | StoreError::Conflict(_)
                    | StoreError::Invalid(_)),
                ) => {
                    tracing::debug!(%err, size = chunk.len(), "batch append refused; retrying one by one");
                    for msg in chunk {
                        out.push(self.append_message(msg).await);
                    }
                }
                Err(err) => out.extend(chunk.iter().map(|_| Err(err.clone()))),
            }
        }
        out
    }

    async fn write_batch(&self, batch: Vec<Request>) {
        let mut sizes = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let mut messages = Vec::new();
        for (group, reply) in batch {
            sizes.push(group.len());
            replies.push(reply);
            messages.extend(group);
        }
        let mut results = self.append_messages(&messages).await.into_iter();
        for (reply, size) in replies.into_iter().zip(sizes) {
            // The caller may have given up waiting; nothing to do then.
            let _ = reply.send(results.by_ref().take(size).collect());
        }
    }

    /// One statement for the whole batch; rows skipped by `ON CONFLICT` (retries) are then
    /// looked up one by one. `Err` only if the write itself failed (then nothing was stored);
    /// later failures are per message.
    async fn insert_batch(&self, batch: &[NewMessage]) -> Result<Vec<Result<Appended>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let now = Timestamp::now().millis();
        let inserted: Vec<MessageRow> = match &*self.pools {
            Pools::Pg(pool) => {
                // As in `append_message`: hold each room's append lock (in id order, so two
                // batches cannot deadlock) so ids become visible in order within a room.
                let mut rooms: Vec<i64> = batch.iter().map(|m| m.room_id.get()).collect();
                rooms.sort_unstable();
                rooms.dedup();
                let mut conn = pool.get().await?;
                let insert = InsertBatchPg {
                    rooms,
                    room_ids: batch.iter().map(|m| m.room_id.get()).collect(),
                    senders: batch.iter().map(|m| m.sender_id.get()).collect(),
                    bodies: batch.iter().map(|m| m.body.as_str()).collect(),
                    client_ids: batch
                        .iter()
                        .map(|m| m.client_id.as_ref().map(ClientMsgId::as_str))
                        .collect(),
                    reply_to: batch
                        .iter()
                        .map(|m| m.reply_to.map(MessageId::get))
                        .collect(),
                    now,
                };
                if batch.iter().any(|m| !m.mentions.is_empty()) {
                    // The mentions of the messages stored go in the same transaction: one
                    // more statement (and BEGIN and COMMIT), only when a message mentions
                    // someone.
                    conn.transaction(async |conn| {
                        let rows: Vec<MessageRow> = insert.load(conn).await?;
                        let mentioned = mention_rows(batch, &rows);
                        if !mentioned.is_empty() {
                            diesel::insert_into(mentions::table)
                                .values(mention_values(mentioned))
                                .execute(conn)
                                .await?;
                        }
                        Ok::<_, diesel::result::Error>(rows)
                    })
                    .await?
                } else {
                    insert.load(&mut conn).await?
                }
            }
            Pools::Sqlite(pool) => {
                // diesel has no multi-row INSERT ... ON CONFLICT for SQLite: one transaction
                // of single inserts (one commit, one lock hand-over) does the same job. It runs
                // as one blocking task: through the async wrapper every statement (BEGIN,
                // each INSERT, COMMIT) would be a trip to the blocking pool and back, which
                // cost more than the inserts themselves (≈ 0.2 ms per message).
                let rows: Vec<sqlite_sync::Row> = batch
                    .iter()
                    .map(|m| sqlite_sync::Row {
                        room_id: m.room_id.get(),
                        sender_id: m.sender_id.get(),
                        body: m.body.as_str().to_owned(),
                        client_id: m.client_id.as_ref().map(|c| c.as_str().to_owned()),
                        created_at: now,
                        reply_to: m.reply_to.map(MessageId::get),
                        mentions: m.mentions.iter().map(|(user, _)| user.get()).collect(),
                    })
                    .collect();
                let _writer = self.sqlite_writer.lock().await;
                let mut conn = pool.get().await?;
                conn.spawn_blocking(move |conn| sqlite_sync::insert(conn, rows))
                    .await?
            }
        };
        // RETURNING yields the inserted rows in VALUES order; a request with no row there was
        // skipped as a retry. Each pairing is checked, never assumed.
        let mut rows = inserted.into_iter().peekable();
        let mut out = Vec::with_capacity(batch.len());
        for msg in batch {
            let client_id = msg.client_id.as_ref().map(|c| c.as_str().to_owned());
            let matches = rows.peek().is_some_and(|r| row_matches(r, msg, &client_id));
            let result = match rows.next_if(|_| matches) {
                Some(row) => row
                    .into_message(
                        msg.room.clone(),
                        msg.sender.clone(),
                        msg.sender_display_name.clone(),
                        msg.sender_is_guest,
                    )
                    .map(|mut message| {
                        if !msg.mentions.is_empty() {
                            message.mentions =
                                msg.mentions.iter().map(|(_, name)| name.clone()).collect();
                        }
                        Appended {
                            message,
                            created: true,
                        }
                    }),
                // Skipped as a retry: this finds the message first stored.
                None if msg.client_id.is_some() => self.append_message(msg).await,
                None => Err(StoreError::Internal(
                    "batch insert returned rows out of order".to_owned(),
                )),
            };
            out.push(result);
        }
        Ok(out)
    }
}

/// Whether `row`, returned by the batch insert, is the one stored for `msg` (`client_id`:
/// `msg`'s, as stored).
fn row_matches(row: &MessageRow, msg: &NewMessage, client_id: &Option<String>) -> bool {
    row.room_id == msg.room_id.get()
        && row.sender_id == msg.sender_id.get()
        && row.client_id == *client_id
        && row.body == msg.body.as_str()
}

/// The `mentions` rows of the messages of `batch` that `rows` (the batch's `RETURNING`, in
/// order, retries missing) shows were stored: (user, room, message).
fn mention_rows(batch: &[NewMessage], rows: &[MessageRow]) -> Vec<(i64, i64, i64)> {
    let mut rows = rows.iter().peekable();
    let mut out = Vec::new();
    for msg in batch {
        let client_id = msg.client_id.as_ref().map(|c| c.as_str().to_owned());
        if let Some(row) = rows.next_if(|r| row_matches(r, msg, &client_id)) {
            out.extend(
                msg.mentions
                    .iter()
                    .map(|(user, _)| (user.get(), row.room_id, row.id)),
            );
        }
    }
    out
}

/// `mentions` rows as diesel insert values.
fn mention_values(rows: Vec<(i64, i64, i64)>) -> Vec<crate::ops::mentions::MentionValue> {
    rows.into_iter()
        .map(|(user, room, message)| {
            (
                mentions::user_id.eq(user),
                mentions::room_id.eq(room),
                mentions::message_id.eq(message),
            )
        })
        .collect()
}

/// The SQLite batch insert, run on the blocking pool with diesel's synchronous API.
mod sqlite_sync {
    use crate::rows::MessageRow;
    use crate::schema::{mentions, messages};
    use diesel::prelude::*;
    use diesel::sqlite::SqliteConnection;

    /// One message to insert, owned (the task outlives the caller's borrow).
    pub(super) struct Row {
        pub(super) room_id: i64,
        pub(super) sender_id: i64,
        pub(super) body: String,
        pub(super) client_id: Option<String>,
        pub(super) created_at: i64,
        pub(super) reply_to: Option<i64>,
        /// The users it mentions (empty, unallocated, for most messages).
        pub(super) mentions: Vec<i64>,
    }

    /// Inserts `rows` in one immediate transaction; the rows stored (retries are skipped by
    /// `ON CONFLICT DO NOTHING` and missing from the result), in order.
    pub(super) fn insert(
        conn: &mut SqliteConnection,
        rows: Vec<Row>,
    ) -> QueryResult<Vec<MessageRow>> {
        conn.immediate_transaction(|conn| {
            let mut stored = Vec::with_capacity(rows.len());
            for row in &rows {
                let inserted: Option<MessageRow> = diesel::insert_into(messages::table)
                    .values((
                        messages::room_id.eq(row.room_id),
                        messages::sender_id.eq(row.sender_id),
                        messages::body.eq(row.body.as_str()),
                        messages::client_id.eq(row.client_id.as_deref()),
                        messages::created_at.eq(row.created_at),
                        messages::reply_to.eq(row.reply_to),
                    ))
                    .on_conflict((messages::sender_id, messages::client_id))
                    .do_nothing()
                    .returning(MessageRow::as_returning())
                    .get_result(conn)
                    .optional()?;
                if let Some(stored) = &inserted {
                    for &user in &row.mentions {
                        diesel::insert_into(mentions::table)
                            .values((
                                mentions::user_id.eq(user),
                                mentions::room_id.eq(stored.room_id),
                                mentions::message_id.eq(stored.id),
                            ))
                            .execute(conn)?;
                    }
                }
                stored.extend(inserted);
            }
            Ok(stored)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreOptions;
    use crate::testing::{TestDb, plain_message, plain_user, public_room};
    use diesel::QueryableByName;

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    /// The batch insert is a named statement prepared once on its connection, not parsed and
    /// planned for every batch (`diesel::sql_query` never is: it leaves no prepared statement).
    #[tokio::test]
    async fn the_postgres_batch_insert_is_prepared_once_per_connection() {
        let db = TestDb::postgres_with(&StoreOptions {
            max_connections: 1,
            ..StoreOptions::default()
        })
        .await
        .unwrap();
        let store = db.store();
        let user = plain_user(store, "alice").await.unwrap();
        let room = public_room(store, "lobby", &user).await.unwrap();
        let message = |body: &str| plain_message(&room, &user, body).unwrap();
        for round in 0..3 {
            let batch: Vec<NewMessage> = (0..=round)
                .map(|i| message(&format!("m{round}.{i}")))
                .collect();
            let stored = store.append_messages(&batch).await;
            assert!(stored.iter().all(Result::is_ok), "{stored:?}");
        }
        let Pools::Pg(pool) = &*store.pools else {
            panic!("a PostgreSQL store");
        };
        let mut conn = pool.get().await.unwrap();
        let prepared: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_prepared_statements \
             WHERE statement LIKE 'WITH locks AS MATERIALIZED%'",
        )
        .get_result(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            prepared.n, 1,
            "one prepared batch insert for three batches of different sizes"
        );
    }
}
