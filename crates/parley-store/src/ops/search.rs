//! Full-text search over message bodies: PostgreSQL `to_tsvector('simple', body)` with an
//! expression GIN index, SQLite an external-content FTS5 table kept by triggers (see the
//! `2026-12-06-020000_search` migrations). Which rooms a user may search is the engine's
//! rule (`parley_core::search`); this module runs the query it asks for.

use crate::error::Result;
use crate::rows::{FullMessageRow, MessageRow, full_message};
use crate::schema::{memberships, messages, room_bans, rooms, users};
use crate::store::{Pools, Store};
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};
use diesel_async::RunQueryDsl;
use parley_domain::{Message, MessageId, RoomId, UserId};

/// One page of a search, as the engine asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// Whose readable rooms are searched: public rooms they are not banned from, and rooms
    /// they are a member of (not banned from). This mirrors `RoomAccess::can_read` in the
    /// engine; the engine owns the rule and checks a named room itself first.
    pub reader: UserId,
    /// Words every result contains: lower-case runs of letters and digits, already
    /// normalized by the engine, never FTS or tsquery syntax. Must not be empty.
    pub terms: Vec<String>,
    /// Only this room.
    pub room: Option<RoomId>,
    /// Only messages older than this id (paging back).
    pub before: Option<MessageId>,
    /// Page size (the engine applies the default and the cap).
    pub limit: u32,
}

/// One page of search results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// Matching messages, newest first; never a tombstone.
    pub messages: Vec<Message>,
    /// Older matches exist beyond this page.
    pub has_more: bool,
}

/// The FTS5 `MATCH` expression for `terms`: each a quoted string (so nothing in it is
/// syntax), joined by spaces (implicit AND).
fn fts5_match(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Store {
    /// Messages matching every term of `query` in the rooms its reader may read, newest
    /// first. Deleted messages are never returned.
    pub async fn search_messages(&self, query: &SearchQuery) -> Result<SearchPage> {
        let limit = query.limit.max(1);
        let fetch = i64::from(limit) + 1;
        let reader = query.reader.get();
        macro_rules! run {
            ($conn:ident, $matches:expr, $order:expr) => {{
                let member_of = memberships::table
                    .filter(memberships::user_id.eq(reader))
                    .select(memberships::room_id);
                let banned_from = room_bans::table
                    .filter(room_bans::user_id.eq(reader))
                    .select(room_bans::room_id);
                let mut q = messages::table
                    .inner_join(rooms::table)
                    .inner_join(users::table)
                    .select((
                        MessageRow::as_select(),
                        rooms::name,
                        users::username,
                        users::is_guest,
                        users::display_name,
                    ))
                    .filter(messages::deleted_at.is_null())
                    .filter($matches)
                    .filter(
                        rooms::kind
                            .eq("public")
                            .or(messages::room_id.eq_any(member_of)),
                    )
                    .filter(diesel::dsl::not(messages::room_id.eq_any(banned_from)))
                    .into_boxed();
                if let Some(room) = query.room {
                    q = q.filter(messages::room_id.eq(room.get()));
                }
                if let Some(before) = query.before {
                    q = q.filter(messages::id.lt(before.get()));
                }
                let rows: Vec<FullMessageRow> = q.order($order).limit(fetch).load($conn).await?;
                rows
            }};
        }
        let mut rows: Vec<FullMessageRow> = match &*self.pools {
            Pools::Pg(pool) => {
                let mut obj = pool.get().await?;
                let conn = &mut *obj;
                // The same expression as the index (`messages_body_search_idx`);
                // `plainto_tsquery` reads no operators, and the terms are plain words anyway.
                let text = query.terms.join(" ");
                run!(
                    conn,
                    sql::<Bool>(
                        "to_tsvector('simple', messages.body) @@ plainto_tsquery('simple', "
                    )
                    .bind::<Text, _>(text)
                    .sql(")"),
                    // `id + 0`: the planner, guessing a match fraction it cannot know, would
                    // otherwise walk the primary key backwards and compute `to_tsvector` for
                    // every row until it has a page (seconds over 1M rows); this way it reads
                    // the matches from the GIN index and sorts them (milliseconds).
                    sql::<BigInt>("messages.id + 0 DESC")
                )
            }
            Pools::Sqlite(pool) => {
                // Every stored message is searchable: index what the heartbeat has not yet.
                self.catch_up_search_index().await?;
                let mut obj = pool.get().await?;
                let conn = &mut *obj;
                run!(
                    conn,
                    sql::<Bool>(
                        "messages.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH "
                    )
                    .bind::<Text, _>(fts5_match(&query.terms))
                    .sql(")"),
                    messages::id.desc()
                )
            }
        };
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let mut messages = rows
            .into_iter()
            .map(full_message)
            .collect::<Result<Vec<_>>>()?;
        self.decorate(&mut messages).await?;
        Ok(SearchPage { messages, has_more })
    }
}

/// Messages indexed per SQLite transaction by [`Store::catch_up_search_index`]: each batch
/// holds the writer (and so every send) for a few milliseconds only.
const INDEX_BATCH: i64 = 2_000;

impl Store {
    /// Brings the search index up to date with the messages stored: on SQLite, indexes the
    /// messages above the watermark in batches of [`INDEX_BATCH`] (one writer transaction
    /// each, so sends interleave); on PostgreSQL nothing (its index is kept on insert).
    /// Returns how many batches it wrote (0: the index was up to date). The engine calls it
    /// on every heartbeat; a search calls it first.
    pub async fn catch_up_search_index(&self) -> Result<u64> {
        let Pools::Sqlite(pool) = &*self.pools else {
            return Ok(0);
        };
        let mut batches = 0u64;
        loop {
            let _writer = self.sqlite_writer.lock().await;
            let mut conn = pool.get().await?;
            let batch = conn
                .spawn_blocking(|conn| sqlite_index::catch_up_batch(conn, INDEX_BATCH))
                .await?;
            if batch == 0 {
                return Ok(batches);
            }
            batches += 1;
        }
    }
}

/// The SQLite index catch-up, run on the blocking pool with diesel's synchronous API.
mod sqlite_index {
    use diesel::sql_types::BigInt;
    use diesel::sqlite::SqliteConnection;
    use diesel::{QueryResult, QueryableByName, RunQueryDsl};

    /// The watermark and how far this batch goes.
    #[derive(QueryableByName)]
    struct Span {
        #[diesel(sql_type = BigInt)]
        from: i64,
        #[diesel(sql_type = BigInt)]
        upto: i64,
    }

    /// Indexes the next `batch` ids above the watermark (tombstones skipped) and moves the
    /// watermark, in one immediate transaction. 0 when there was nothing to index.
    pub(super) fn catch_up_batch(conn: &mut SqliteConnection, batch: i64) -> QueryResult<usize> {
        conn.immediate_transaction(|conn| {
            let span: Span = diesel::sql_query(
                "SELECT s.indexed_upto AS \"from\", \
                 min(coalesce((SELECT max(id) FROM messages), 0), s.indexed_upto + ?) AS upto \
                 FROM messages_fts_state s WHERE s.id = 1",
            )
            .bind::<BigInt, _>(batch)
            .get_result(conn)?;
            if span.upto <= span.from {
                return Ok(0);
            }
            let rows = diesel::sql_query(
                "INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages \
                 WHERE id > ? AND id <= ? AND deleted_at IS NULL",
            )
            .bind::<BigInt, _>(span.from)
            .bind::<BigInt, _>(span.upto)
            .execute(conn)?;
            diesel::sql_query("UPDATE messages_fts_state SET indexed_upto = ? WHERE id = 1")
                .bind::<BigInt, _>(span.upto)
                .execute(conn)?;
            // A batch of tombstones alone indexes no row but still moves on.
            Ok(rows.max(1))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::fts5_match;

    #[test]
    fn fts5_terms_are_quoted() {
        assert_eq!(
            fts5_match(&["near".into(), "a\"b".into()]),
            "\"near\" \"a\"\"b\""
        );
    }
}
