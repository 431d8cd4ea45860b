//! Rooms, direct rooms, memberships, room lists with unread counts, read markers.

use crate::error::{Result, StoreError};
use crate::rows::{MembershipRow, RoomRow, parse_role};
use crate::schema::{memberships, mentions, messages, room_bans, rooms, users};
use crate::store::{Store, with_conn};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use parley_domain::{
    DirectKey, LastMessage, Membership, MessageId, ReplyPreview, Role, Room, RoomId, RoomKind,
    RoomName, RoomSummary, Timestamp, Topic, UserId, UserName,
};
use std::collections::HashMap;

/// A room visible to a user, with their role if they are a member.
type VisibleRoom = (RoomRow, Option<String>);
/// (room id, unread messages).
type UnreadCount = (i64, i64);

/// A group room to create.
#[derive(Debug, Clone)]
pub struct NewRoom {
    /// Unique name; `dm.` names are reserved for direct rooms.
    pub name: RoomName,
    /// `Public` or `Private` (direct rooms come from [`Store::direct_room`]).
    pub kind: RoomKind,
    /// The creator, who becomes its owner.
    pub creator: UserId,
    /// One line about the room.
    pub topic: Topic,
}

/// Which rooms a room list shows ([`Store::room_page`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RoomScope {
    /// The rooms the user belongs to, of every kind (public, private, direct): their sidebar.
    #[default]
    Member,
    /// Every public room, whether the user belongs to it or not, except those the user is
    /// banned from: the directory to browse.
    Public,
}

/// Which page of a room list to read. Pages are in name order; a page starts right after
/// `after`, so a reader that passes each page's [`RoomPage::next`] back sees every room that
/// keeps its name throughout exactly once, whatever else is created, renamed or deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomListQuery {
    /// Which rooms.
    pub scope: RoomScope,
    /// Only rooms whose name starts with this (any room name's prefix is a room name).
    pub prefix: Option<RoomName>,
    /// Only rooms whose name sorts after this one: the previous page's `next`.
    pub after: Option<RoomName>,
    /// Page size; `None` means [`RoomListQuery::DEFAULT_LIMIT`], and it is capped at
    /// [`RoomListQuery::MAX_LIMIT`] (and at least 1).
    pub limit: Option<u32>,
}

impl RoomListQuery {
    /// Page size when none is asked for.
    pub const DEFAULT_LIMIT: u32 = 100;
    /// The largest page served.
    pub const MAX_LIMIT: u32 = 200;

    /// The page size actually used.
    pub fn effective_limit(&self) -> u32 {
        self.limit
            .unwrap_or(Self::DEFAULT_LIMIT)
            .clamp(1, Self::MAX_LIMIT)
    }
}

/// One page of a room list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomPage {
    /// The rooms, by name, each with the user's role and unread count.
    pub rooms: Vec<RoomSummary>,
    /// The name to ask for the next page after; `None` on the last page.
    pub next: Option<RoomName>,
}

/// `prefix` as a `LIKE` pattern: room names may contain `_`, which `LIKE` reads as any
/// character (`%` and the escape character `\` cannot occur in them).
fn prefix_pattern(prefix: &RoomName) -> String {
    format!("{}%", prefix.as_str().replace('_', "\\_"))
}

fn room_taken(err: StoreError, name: &RoomName) -> StoreError {
    match err {
        StoreError::Conflict(_) => StoreError::Conflict(format!("room name {name} is taken")),
        StoreError::NotFound(_) => StoreError::NotFound("user"),
        other => other,
    }
}

fn not_found(what: &'static str) -> impl Fn(diesel::result::Error) -> StoreError {
    move |e| match StoreError::from(e) {
        StoreError::NotFound(_) => StoreError::NotFound(what),
        other => other,
    }
}

impl Store {
    /// Creates a public or private room and makes its creator the owner, in one transaction.
    /// `Conflict` if the name is taken, `Invalid` for a direct kind or a `dm.` name,
    /// `NotFound` if the creator does not exist.
    pub async fn create_room(&self, new: &NewRoom) -> Result<Room> {
        if new.kind == RoomKind::Direct || new.name.is_direct() {
            return Err(StoreError::Invalid(
                "direct rooms are made with direct_room, and 'dm.' names are reserved".to_owned(),
            ));
        }
        let now = Timestamp::now().millis();
        let row: RoomRow = with_conn!(
            self,
            write | conn | {
                conn.transaction(async |conn| {
                    let room: RoomRow = diesel::insert_into(rooms::table)
                        .values((
                            rooms::name.eq(new.name.as_str()),
                            rooms::kind.eq(new.kind.as_str()),
                            rooms::creator_id.eq(Some(new.creator.get())),
                            rooms::topic.eq(new.topic.as_str()),
                            rooms::created_at.eq(now),
                        ))
                        .returning(RoomRow::as_returning())
                        .get_result(conn)
                        .await?;
                    diesel::insert_into(memberships::table)
                        .values((
                            memberships::room_id.eq(room.id),
                            memberships::user_id.eq(new.creator.get()),
                            memberships::role.eq(Role::Owner.as_str()),
                            memberships::joined_at.eq(now),
                        ))
                        .execute(conn)
                        .await?;
                    Ok::<_, diesel::result::Error>(room)
                })
                .await
                .map_err(|e| room_taken(e.into(), &new.name))?
            }
        );
        row.into_room()
    }

    /// The room with this id; `NotFound` if there is none.
    pub async fn room_by_id(&self, id: RoomId) -> Result<Room> {
        let row: RoomRow = with_conn!(self, |conn| {
            rooms::table
                .find(id.get())
                .select(RoomRow::as_select())
                .first(conn)
                .await
                .map_err(not_found("room"))?
        });
        row.into_room()
    }

    /// The room with this name; `NotFound` if there is none.
    pub async fn room_by_name(&self, name: &RoomName) -> Result<Room> {
        let row: RoomRow = with_conn!(self, |conn| {
            rooms::table
                .filter(rooms::name.eq(name.as_str()))
                .select(RoomRow::as_select())
                .first(conn)
                .await
                .map_err(not_found("room"))?
        });
        row.into_room()
    }

    /// Renames a group room. `Conflict` if the name is taken, `Invalid` for a direct room or
    /// a `dm.` name, `NotFound` if there is no such room.
    pub async fn rename_room(&self, id: RoomId, name: &RoomName) -> Result<Room> {
        if name.is_direct() {
            return Err(StoreError::Invalid(
                "'dm.' names are reserved for direct rooms".to_owned(),
            ));
        }
        let row: Option<RoomRow> = with_conn!(
            self,
            write | conn | {
                diesel::update(
                    rooms::table
                        .find(id.get())
                        .filter(rooms::kind.ne(RoomKind::Direct.as_str())),
                )
                .set(rooms::name.eq(name.as_str()))
                .returning(RoomRow::as_returning())
                .get_result(conn)
                .await
                .optional()
                .map_err(|e| room_taken(e.into(), name))?
            }
        );
        self.group_room_updated(row, id, "direct rooms cannot be renamed")
            .await
    }

    /// Makes a group room public or private. `Invalid` for a direct room or for making a room
    /// direct, `NotFound` if there is no such room.
    pub async fn set_kind(&self, id: RoomId, kind: RoomKind) -> Result<Room> {
        if kind == RoomKind::Direct {
            return Err(StoreError::Invalid(
                "a room is made direct only by a direct chat".to_owned(),
            ));
        }
        let row: Option<RoomRow> = with_conn!(
            self,
            write | conn | {
                diesel::update(
                    rooms::table
                        .find(id.get())
                        .filter(rooms::kind.ne(RoomKind::Direct.as_str())),
                )
                .set(rooms::kind.eq(kind.as_str()))
                .returning(RoomRow::as_returning())
                .get_result(conn)
                .await
                .optional()?
            }
        );
        self.group_room_updated(row, id, "a direct room's visibility is fixed")
            .await
    }

    /// The room an update filtered to group rooms returned, or why it returned none: no such
    /// room (`NotFound`), or a direct room (`Invalid`, saying `direct_refusal`).
    async fn group_room_updated(
        &self,
        row: Option<RoomRow>,
        id: RoomId,
        direct_refusal: &str,
    ) -> Result<Room> {
        match row {
            Some(row) => row.into_room(),
            None => {
                self.room_by_id(id).await?;
                Err(StoreError::Invalid(direct_refusal.to_owned()))
            }
        }
    }

    /// The guests among a room's members (one query).
    pub async fn guest_members(&self, room: RoomId) -> Result<Vec<UserId>> {
        let ids: Vec<i64> = with_conn!(self, |conn| {
            memberships::table
                .inner_join(users::table.on(users::id.eq(memberships::user_id)))
                .filter(memberships::room_id.eq(room.get()))
                .filter(users::is_guest.eq(true))
                .select(memberships::user_id)
                .load(conn)
                .await?
        });
        Ok(ids.into_iter().map(UserId).collect())
    }

    /// Sets a room's topic. `NotFound` if there is no such room.
    pub async fn set_topic(&self, id: RoomId, topic: &Topic) -> Result<Room> {
        let row: RoomRow = with_conn!(
            self,
            write | conn | {
                diesel::update(rooms::table.find(id.get()))
                    .set(rooms::topic.eq(topic.as_str()))
                    .returning(RoomRow::as_returning())
                    .get_result(conn)
                    .await
                    .map_err(not_found("room"))?
            }
        );
        row.into_room()
    }

    /// Deletes a room with its memberships and messages. `NotFound` if there is none.
    pub async fn delete_room(&self, id: RoomId) -> Result<()> {
        let n = with_conn!(
            self,
            write | conn | {
                diesel::delete(rooms::table.find(id.get()))
                    .execute(conn)
                    .await?
            }
        );
        if n == 0 {
            Err(StoreError::NotFound("room"))
        } else {
            Ok(())
        }
    }

    /// The direct room of two users, created on first use with both as members. Safe to race:
    /// concurrent callers get the same room. `Invalid` if `a == b`, `NotFound` if either user
    /// does not exist.
    pub async fn direct_room(&self, a: UserId, b: UserId) -> Result<Room> {
        let key = DirectKey::new(a, b).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let name = key.room_name();
        let now = Timestamp::now().millis();
        let row: RoomRow = with_conn!(
            self,
            write | conn | {
                conn.transaction(async |conn| {
                    // Write first: a SQLite transaction that starts with a read cannot wait for
                    // the write lock (it would fail busy at once).
                    diesel::insert_into(rooms::table)
                        .values((
                            rooms::name.eq(name.as_str()),
                            rooms::kind.eq(RoomKind::Direct.as_str()),
                            rooms::creator_id.eq(Some(a.get())),
                            rooms::topic.eq(""),
                            rooms::created_at.eq(now),
                            rooms::direct_low.eq(Some(key.low().get())),
                            rooms::direct_high.eq(Some(key.high().get())),
                        ))
                        .on_conflict_do_nothing()
                        .execute(conn)
                        .await?;
                    let room: RoomRow = rooms::table
                        .filter(rooms::name.eq(name.as_str()))
                        .select(RoomRow::as_select())
                        .first(conn)
                        .await?;
                    // Two single inserts: SQLite has no multi-row insert with ON CONFLICT in diesel.
                    for member in [key.low(), key.high()] {
                        diesel::insert_into(memberships::table)
                            .values((
                                memberships::room_id.eq(room.id),
                                memberships::user_id.eq(member.get()),
                                memberships::role.eq(Role::Member.as_str()),
                                memberships::joined_at.eq(now),
                            ))
                            .on_conflict_do_nothing()
                            .execute(conn)
                            .await?;
                    }
                    Ok::<_, diesel::result::Error>(room)
                })
                .await
                .map_err(not_found("user"))?
            }
        );
        row.into_room()
    }

    /// Adds `user` to `room` with `role`; if already a member, returns the existing
    /// membership unchanged. `NotFound` if the room or user does not exist, `Invalid` for a
    /// direct room (its two members are fixed).
    pub async fn add_member(&self, room: RoomId, user: UserId, role: Role) -> Result<Membership> {
        let room = self.room_by_id(room).await?;
        if room.kind == RoomKind::Direct {
            return Err(StoreError::Invalid(
                "a direct room's members are fixed".to_owned(),
            ));
        }
        let now = Timestamp::now().millis();
        let row: MembershipRow = with_conn!(
            self,
            write | conn | {
                let inserted = diesel::insert_into(memberships::table)
                    .values((
                        memberships::room_id.eq(room.id.get()),
                        memberships::user_id.eq(user.get()),
                        memberships::role.eq(role.as_str()),
                        memberships::joined_at.eq(now),
                    ))
                    .on_conflict_do_nothing()
                    .returning(MembershipRow::as_returning())
                    .get_result(conn)
                    .await
                    .optional()
                    .map_err(not_found("user"))?;
                match inserted {
                    Some(row) => row,
                    None => memberships::table
                        .find((room.id.get(), user.get()))
                        .select(MembershipRow::as_select())
                        .first(conn)
                        .await
                        .map_err(not_found("membership"))?,
                }
            }
        );
        row.into_membership()
    }

    /// Makes `user` a member of the group room `room` (as [`Store::add_member`]; already a
    /// member is fine), then looks once for a ban of `user` from it and, if there is one,
    /// removes the membership again: false then. All on one connection, so that a join
    /// costs one checkout: a ban committed after the caller's access check (which removed
    /// the old membership first) is never undone by this new one. `Invalid` for a direct
    /// room, `NotFound` if the room or user is gone.
    pub async fn add_member_unless_banned(
        &self,
        room: &Room,
        user: UserId,
        role: Role,
    ) -> Result<bool> {
        if room.kind == RoomKind::Direct {
            return Err(StoreError::Invalid(
                "a direct room's members are fixed".to_owned(),
            ));
        }
        let key = (room.id.get(), user.get());
        let now = Timestamp::now().millis();
        with_conn!(
            self,
            write
                | conn
                | {
                    diesel::insert_into(memberships::table)
                        .values((
                            memberships::room_id.eq(key.0),
                            memberships::user_id.eq(key.1),
                            memberships::role.eq(role.as_str()),
                            memberships::joined_at.eq(now),
                        ))
                        .on_conflict_do_nothing()
                        .execute(conn)
                        .await
                        .map_err(not_found("room or user"))?;
                    let banned: i64 = room_bans::table.find(key).count().get_result(conn).await?;
                    if banned > 0 {
                        if let Err(e) = diesel::delete(memberships::table.find(key))
                            .execute(conn)
                            .await
                        {
                            tracing::warn!(error = %e, room = %room.name, "could not undo the membership of a user banned while joining");
                        }
                        Ok(false)
                    } else {
                        Ok(true)
                    }
                }
        )
    }

    /// Removes `user` from `room`. `NotFound` if they were not a member.
    pub async fn remove_member(&self, room: RoomId, user: UserId) -> Result<()> {
        let n = with_conn!(
            self,
            write | conn | {
                diesel::delete(memberships::table.find((room.get(), user.get())))
                    .execute(conn)
                    .await?
            }
        );
        if n == 0 {
            Err(StoreError::NotFound("membership"))
        } else {
            Ok(())
        }
    }

    /// Changes a member's role. `NotFound` if they are not a member.
    pub async fn set_role(&self, room: RoomId, user: UserId, role: Role) -> Result<Membership> {
        let row: MembershipRow = with_conn!(
            self,
            write | conn | {
                diesel::update(memberships::table.find((room.get(), user.get())))
                    .set(memberships::role.eq(role.as_str()))
                    .returning(MembershipRow::as_returning())
                    .get_result(conn)
                    .await
                    .map_err(not_found("membership"))?
            }
        );
        row.into_membership()
    }

    /// `user`'s membership of `room`, if any.
    pub async fn membership(&self, room: RoomId, user: UserId) -> Result<Option<Membership>> {
        let row: Option<MembershipRow> = with_conn!(self, |conn| {
            memberships::table
                .find((room.get(), user.get()))
                .select(MembershipRow::as_select())
                .first(conn)
                .await
                .optional()?
        });
        row.map(MembershipRow::into_membership).transpose()
    }

    /// Whether `user` belongs to `room`.
    pub async fn is_member(&self, room: RoomId, user: UserId) -> Result<bool> {
        Ok(self.membership(room, user).await?.is_some())
    }

    /// The members of a room, oldest first (empty if the room does not exist).
    pub async fn members(&self, room: RoomId) -> Result<Vec<Membership>> {
        let rows: Vec<MembershipRow> = with_conn!(self, |conn| {
            memberships::table
                .filter(memberships::room_id.eq(room.get()))
                .order((memberships::joined_at.asc(), memberships::user_id.asc()))
                .select(MembershipRow::as_select())
                .load(conn)
                .await?
        });
        rows.into_iter()
            .map(MembershipRow::into_membership)
            .collect()
    }

    /// The members of a room with their user names, oldest first (empty if the room does not
    /// exist): one query.
    pub async fn members_named(&self, room: RoomId) -> Result<Vec<(Membership, UserName)>> {
        let rows: Vec<(MembershipRow, String)> = with_conn!(self, |conn| {
            memberships::table
                .inner_join(users::table.on(users::id.eq(memberships::user_id)))
                .filter(memberships::room_id.eq(room.get()))
                .order((memberships::joined_at.asc(), memberships::user_id.asc()))
                .select((MembershipRow::as_select(), users::username))
                .load(conn)
                .await?
        });
        rows.into_iter()
            .map(|(row, name)| {
                let name =
                    UserName::parse(&name).map_err(|e| StoreError::corrupt("user name", e))?;
                Ok((row.into_membership()?, name))
            })
            .collect()
    }

    /// Whether `a` and `b` are members of one room (any kind): one query.
    pub async fn share_a_room(&self, a: UserId, b: UserId) -> Result<bool> {
        let (mine, theirs) = diesel::alias!(memberships as mine, memberships as theirs);
        let shared: i64 = with_conn!(self, |conn| {
            mine.inner_join(
                theirs.on(theirs
                    .field(memberships::room_id)
                    .eq(mine.field(memberships::room_id))),
            )
            .filter(mine.field(memberships::user_id).eq(a.get()))
            .filter(theirs.field(memberships::user_id).eq(b.get()))
            .count()
            .get_result(conn)
            .await?
        });
        Ok(shared > 0)
    }

    /// One page of the rooms `user` sees in `query.scope`, by name, each with their role and
    /// unread count (messages after their read marker, not counting deleted ones; 0 where
    /// they are not a member). The page holds at most [`RoomListQuery::effective_limit`]
    /// rooms; unread counts are computed for those rooms only, and so are unread mentions
    /// (`unread_mentions`: those unread messages that mention the user). Three queries.
    pub async fn room_page(&self, user: UserId, query: &RoomListQuery) -> Result<RoomPage> {
        let uid = user.get();
        let limit = query.effective_limit() as usize;
        // One extra row tells whether there is a next page.
        let fetch = i64::from(query.effective_limit()) + 1;
        let pattern = query.prefix.as_ref().map(prefix_pattern);
        let (mut rows, counts, mention_counts): (
            Vec<VisibleRoom>,
            Vec<UnreadCount>,
            Vec<UnreadCount>,
        ) = with_conn!(self, |conn| {
            let mut q = rooms::table
                .left_join(
                    memberships::table.on(memberships::room_id
                        .eq(rooms::id)
                        .and(memberships::user_id.eq(uid))),
                )
                .select((RoomRow::as_select(), memberships::role.nullable()))
                .into_boxed();
            q = match query.scope {
                RoomScope::Member => q.filter(memberships::user_id.is_not_null()),
                // A room the user is banned from is not theirs to browse or join.
                RoomScope::Public => {
                    q.filter(rooms::kind.eq(RoomKind::Public.as_str()))
                        .filter(diesel::dsl::not(diesel::dsl::exists(
                            room_bans::table
                                .filter(room_bans::room_id.eq(rooms::id))
                                .filter(room_bans::user_id.eq(uid)),
                        )))
                }
            };
            if let Some(pattern) = &pattern {
                q = q.filter(rooms::name.like(pattern).escape('\\'));
            }
            if let Some(after) = &query.after {
                q = q.filter(rooms::name.gt(after.as_str()));
            }
            let rows: Vec<VisibleRoom> = q.order(rooms::name.asc()).limit(fetch).load(conn).await?;
            let member_of: Vec<i64> = rows
                .iter()
                .take(limit)
                .filter(|(_, role)| role.is_some())
                .map(|(room, _)| room.id)
                .collect();
            let (counts, mention_counts) = if member_of.is_empty() {
                (Vec::new(), Vec::new())
            } else {
                let counts: Vec<UnreadCount> = messages::table
                    .inner_join(memberships::table.on(memberships::room_id.eq(messages::room_id)))
                    .filter(memberships::user_id.eq(uid))
                    .filter(messages::room_id.eq_any(&member_of))
                    .filter(messages::deleted_at.is_null())
                    .filter(
                        memberships::last_read
                            .is_null()
                            .or(messages::id.nullable().gt(memberships::last_read)),
                    )
                    .group_by(messages::room_id)
                    .select((messages::room_id, diesel::dsl::count_star()))
                    .load(conn)
                    .await?;
                // Unread mentions, against the same marker: read by the mentions key
                // (user, room, message), then the messages' tombstones.
                let mention_counts: Vec<UnreadCount> = mentions::table
                    .inner_join(messages::table.on(messages::id.eq(mentions::message_id)))
                    .inner_join(
                        memberships::table.on(memberships::room_id
                            .eq(mentions::room_id)
                            .and(memberships::user_id.eq(mentions::user_id))),
                    )
                    .filter(mentions::user_id.eq(uid))
                    .filter(mentions::room_id.eq_any(&member_of))
                    .filter(messages::deleted_at.is_null())
                    .filter(
                        memberships::last_read
                            .is_null()
                            .or(mentions::message_id.nullable().gt(memberships::last_read)),
                    )
                    .group_by(mentions::room_id)
                    .select((mentions::room_id, diesel::dsl::count_star()))
                    .load(conn)
                    .await?;
                (counts, mention_counts)
            };
            (rows, counts, mention_counts)
        });
        let more = rows.len() > limit;
        rows.truncate(limit);
        let counts: HashMap<i64, i64> = counts.into_iter().collect();
        let mention_counts: HashMap<i64, i64> = mention_counts.into_iter().collect();
        let mut last = self
            .last_messages(rows.iter().map(|(room, _)| room.id))
            .await?;
        let rooms = rows
            .into_iter()
            .map(|(room, role)| {
                let (unread, unread_mentions) = if role.is_some() {
                    (
                        counts.get(&room.id).copied().unwrap_or(0),
                        mention_counts.get(&room.id).copied().unwrap_or(0),
                    )
                } else {
                    (0, 0)
                };
                Ok(RoomSummary {
                    last_message: last.remove(&room.id),
                    role: role.as_deref().map(parse_role).transpose()?,
                    unread,
                    unread_mentions,
                    room: room.into_room()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let next = if more {
            rooms.last().map(|s| s.room.name.clone())
        } else {
            None
        };
        Ok(RoomPage { rooms, next })
    }

    /// The newest message that is not deleted of each room in `rooms`, previewed: one query
    /// for them all. Each room's is found by a correlated `ORDER BY id DESC LIMIT 1` on the
    /// `(room_id, id)` index, which stops at the first live message from the end, so the cost
    /// does not grow with a room's history (a `MAX(id) ... GROUP BY` would read every message
    /// of the rooms to test `deleted_at`).
    async fn last_messages(
        &self,
        rooms: impl Iterator<Item = i64>,
    ) -> Result<HashMap<i64, LastMessage>> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            room_id: i64,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            id: i64,
            #[diesel(sql_type = diesel::sql_types::Text)]
            username: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            body: String,
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            created_at: i64,
        }
        // The ids are integers read from the database, written into the statement as such
        // (no text from outside reaches it): one statement text for both backends, whose
        // ways of binding a list differ.
        let ids: Vec<String> = rooms.map(|id| id.to_string()).collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT m.room_id, m.id, u.username, m.body, m.created_at \
             FROM messages m INNER JOIN users u ON u.id = m.sender_id \
             WHERE m.id IN (SELECT (SELECT x.id FROM messages x \
                 WHERE x.room_id = r.id AND x.deleted_at IS NULL ORDER BY x.id DESC LIMIT 1) \
               FROM rooms r WHERE r.id IN ({}))",
            ids.join(",")
        );
        let rows: Vec<Row> = with_conn!(self, |conn| diesel::sql_query(sql).load(conn).await?);
        rows.into_iter()
            .map(|row| {
                let sender = UserName::parse(&row.username)
                    .map_err(|e| StoreError::corrupt("user name", e))?;
                let preview = match row.body.char_indices().nth(ReplyPreview::EXCERPT_CHARS) {
                    Some((cut, _)) => row.body[..cut].to_owned(),
                    None => row.body,
                };
                Ok((
                    row.room_id,
                    LastMessage {
                        id: MessageId(row.id),
                        sender,
                        preview,
                        created_at: Timestamp(row.created_at),
                    },
                ))
            })
            .collect()
    }

    /// Moves `user`'s read marker in `room` forward to `message` (never backward: an older
    /// id, or the same, leaves it unchanged). The membership as it now is, and whether the
    /// marker moved. `NotFound` if they are not a member or the message is not in that room.
    pub async fn set_read_marker(
        &self,
        room: RoomId,
        user: UserId,
        message: MessageId,
    ) -> Result<(Membership, bool)> {
        let (row, moved): (MembershipRow, bool) = with_conn!(
            self,
            write | conn | {
                let in_room: i64 = messages::table
                    .filter(
                        messages::id
                            .eq(message.get())
                            .and(messages::room_id.eq(room.get())),
                    )
                    .count()
                    .get_result(conn)
                    .await?;
                if in_room == 0 {
                    return Err(StoreError::NotFound("message"));
                }
                let moved = diesel::update(
                    memberships::table.find((room.get(), user.get())).filter(
                        memberships::last_read
                            .is_null()
                            .or(memberships::last_read.lt(message.get())),
                    ),
                )
                .set(memberships::last_read.eq(Some(message.get())))
                .returning(MembershipRow::as_returning())
                .get_result(conn)
                .await
                .optional()?;
                match moved {
                    Some(row) => (row, true),
                    None => (
                        memberships::table
                            .find((room.get(), user.get()))
                            .select(MembershipRow::as_select())
                            .first(conn)
                            .await
                            .map_err(not_found("membership"))?,
                        false,
                    ),
                }
            }
        );
        Ok((row.into_membership()?, moved))
    }
}
