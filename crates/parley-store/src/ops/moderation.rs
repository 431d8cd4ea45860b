//! Room moderation: bans, mutes, read-only rooms, and a user's whole standing in a room (what
//! the engine's access policy reads).

use crate::error::{Result, StoreError};
use crate::rows::{MembershipRow, RoomRow};
use crate::schema::{memberships, room_bans, room_mutes, rooms, users};
use crate::store::{Store, with_conn};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use parley_domain::{
    Membership, Mute, Reason, Room, RoomBan, RoomId, RoomMute, RoomName, Timestamp, UserId,
    UserName,
};

/// A user's standing in one room: membership, ban and mute (read together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// Their membership, if they are a member.
    pub membership: Option<Membership>,
    /// Banned from the room.
    pub banned: bool,
    /// Their mute, if any (it may have expired: see [`Mute::holds_at`]).
    pub mute: Option<Mute>,
}

type BanRow = (i64, String, Option<String>, Option<String>, i64);
type MuteRow = (
    i64,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    i64,
);

fn user_name(raw: &str) -> Result<UserName> {
    UserName::parse(raw).map_err(|e| StoreError::corrupt("user name", e))
}

fn reason(raw: Option<String>) -> Result<Option<Reason>> {
    raw.as_deref()
        .map(Reason::parse)
        .transpose()
        .map_err(|e| StoreError::corrupt("reason", e))
}

impl Store {
    /// `user`'s membership, ban and mute in `room`: one connection, three primary-key reads.
    pub async fn standing(&self, room: RoomId, user: UserId) -> Result<Standing> {
        let key = (room.get(), user.get());
        let (membership, banned, mute): (Option<MembershipRow>, i64, Option<Option<i64>>) =
            with_conn!(self, |conn| {
                let membership = memberships::table
                    .find(key)
                    .select(MembershipRow::as_select())
                    .first(conn)
                    .await
                    .optional()?;
                let banned: i64 = room_bans::table.find(key).count().get_result(conn).await?;
                let mute = room_mutes::table
                    .find(key)
                    .select(room_mutes::until)
                    .first(conn)
                    .await
                    .optional()?;
                (membership, banned, mute)
            });
        Ok(Standing {
            membership: membership.map(MembershipRow::into_membership).transpose()?,
            banned: banned > 0,
            mute: mute.map(|until| Mute {
                until: until.map(Timestamp),
            }),
        })
    }

    /// The room named `name` and `user`'s standing in it, in one query (the room and its
    /// three primary-key reads of [`Store::standing`] as left joins): what every `join`
    /// and access check reads, so it holds a pooled connection for one round trip.
    /// `NotFound` if there is no such room.
    pub async fn room_and_standing(
        &self,
        name: &RoomName,
        user: UserId,
    ) -> Result<(Room, Standing)> {
        let uid = user.get();
        type Row = (
            RoomRow,
            Option<MembershipRow>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        );
        let (room, membership, banned, muted, until): Row = with_conn!(self, |conn| {
            rooms::table
                .left_join(
                    memberships::table.on(memberships::room_id
                        .eq(rooms::id)
                        .and(memberships::user_id.eq(uid))),
                )
                .left_join(
                    room_bans::table.on(room_bans::room_id
                        .eq(rooms::id)
                        .and(room_bans::user_id.eq(uid))),
                )
                .left_join(
                    room_mutes::table.on(room_mutes::room_id
                        .eq(rooms::id)
                        .and(room_mutes::user_id.eq(uid))),
                )
                .filter(rooms::name.eq(name.as_str()))
                .select((
                    RoomRow::as_select(),
                    Option::<MembershipRow>::as_select(),
                    room_bans::user_id.nullable(),
                    // `until` is NULL for a mute without end: whether there is a mute at
                    // all is read from its key.
                    room_mutes::user_id.nullable(),
                    room_mutes::until.nullable(),
                ))
                .first(conn)
                .await
                .optional()?
                .ok_or(StoreError::NotFound("room"))?
        });
        Ok((
            room.into_room()?,
            Standing {
                membership: membership.map(MembershipRow::into_membership).transpose()?,
                banned: banned.is_some(),
                mute: muted.map(|_| Mute {
                    until: until.map(Timestamp),
                }),
            },
        ))
    }

    /// Bans `user` from `room` and ends their membership, in one transaction (a second ban
    /// keeps the first one's reason and time). Whether they were a member. `NotFound` if the
    /// room or user does not exist.
    pub async fn ban_from_room(
        &self,
        room: RoomId,
        user: UserId,
        by: UserId,
        why: Option<&Reason>,
    ) -> Result<bool> {
        let now = Timestamp::now().millis();
        let why = why.map(|r| r.as_str().to_owned());
        let removed: usize = with_conn!(
            self,
            write | conn | {
                conn.transaction(async |conn| {
                    // Write first (see `direct_room`).
                    let removed = diesel::delete(memberships::table.find((room.get(), user.get())))
                        .execute(conn)
                        .await?;
                    diesel::insert_into(room_bans::table)
                        .values((
                            room_bans::room_id.eq(room.get()),
                            room_bans::user_id.eq(user.get()),
                            room_bans::reason.eq(why),
                            room_bans::banned_by.eq(Some(by.get())),
                            room_bans::created_at.eq(now),
                        ))
                        .on_conflict_do_nothing()
                        .execute(conn)
                        .await?;
                    Ok::<_, diesel::result::Error>(removed)
                })
                .await
                .map_err(|e| match StoreError::from(e) {
                    StoreError::NotFound(_) => StoreError::NotFound("room or user"),
                    other => other,
                })?
            }
        );
        Ok(removed > 0)
    }

    /// Lifts `user`'s ban from `room`; false if they were not banned.
    pub async fn unban_from_room(&self, room: RoomId, user: UserId) -> Result<bool> {
        let n = with_conn!(
            self,
            write | conn | {
                diesel::delete(room_bans::table.find((room.get(), user.get())))
                    .execute(conn)
                    .await?
            }
        );
        Ok(n > 0)
    }

    /// Whether `user` is banned from `room`.
    pub async fn is_banned(&self, room: RoomId, user: UserId) -> Result<bool> {
        let n: i64 = with_conn!(self, |conn| {
            room_bans::table
                .find((room.get(), user.get()))
                .count()
                .get_result(conn)
                .await?
        });
        Ok(n > 0)
    }

    /// The users banned from `room`, newest ban first.
    pub async fn room_bans(&self, room: RoomId) -> Result<Vec<RoomBan>> {
        let banner = diesel::alias!(users as banner);
        let rows: Vec<BanRow> = with_conn!(self, |conn| {
            room_bans::table
                .inner_join(users::table.on(users::id.eq(room_bans::user_id)))
                .left_join(banner.on(banner.field(users::id).nullable().eq(room_bans::banned_by)))
                .filter(room_bans::room_id.eq(room.get()))
                .order((room_bans::created_at.desc(), room_bans::user_id.asc()))
                .select((
                    room_bans::user_id,
                    users::username,
                    room_bans::reason,
                    banner.field(users::username).nullable(),
                    room_bans::created_at,
                ))
                .load(conn)
                .await?
        });
        rows.into_iter()
            .map(|(id, name, why, by, at)| {
                Ok(RoomBan {
                    user_id: UserId(id),
                    username: user_name(&name)?,
                    reason: reason(why)?,
                    banned_by: by.as_deref().map(user_name).transpose()?,
                    created_at: Timestamp(at),
                })
            })
            .collect()
    }

    /// Mutes `user` in `room` until `until` (`None`: until lifted), replacing an earlier mute.
    /// `NotFound` if the room or user does not exist.
    pub async fn mute_in_room(
        &self,
        room: RoomId,
        user: UserId,
        until: Option<Timestamp>,
        by: UserId,
        why: Option<&Reason>,
    ) -> Result<Mute> {
        let now = Timestamp::now().millis();
        let until_ms = until.map(Timestamp::millis);
        let why = why.map(|r| r.as_str().to_owned());
        with_conn!(
            self,
            write | conn | {
                diesel::insert_into(room_mutes::table)
                    .values((
                        room_mutes::room_id.eq(room.get()),
                        room_mutes::user_id.eq(user.get()),
                        room_mutes::until.eq(until_ms),
                        room_mutes::reason.eq(&why),
                        room_mutes::muted_by.eq(Some(by.get())),
                        room_mutes::created_at.eq(now),
                    ))
                    .on_conflict((room_mutes::room_id, room_mutes::user_id))
                    .do_update()
                    .set((
                        room_mutes::until.eq(until_ms),
                        room_mutes::reason.eq(&why),
                        room_mutes::muted_by.eq(Some(by.get())),
                        room_mutes::created_at.eq(now),
                    ))
                    .execute(conn)
                    .await
                    .map_err(|e| match StoreError::from(e) {
                        StoreError::NotFound(_) => StoreError::NotFound("room or user"),
                        other => other,
                    })?
            }
        );
        Ok(Mute { until })
    }

    /// Lifts `user`'s mute in `room`; false if there was none (an expired one counts as none,
    /// and is removed all the same).
    pub async fn unmute_in_room(&self, room: RoomId, user: UserId) -> Result<bool> {
        let now = Timestamp::now().millis();
        let deleted: Vec<Option<i64>> = with_conn!(
            self,
            write | conn | {
                diesel::delete(room_mutes::table.find((room.get(), user.get())))
                    .returning(room_mutes::until)
                    .load(conn)
                    .await?
            }
        );
        Ok(deleted
            .into_iter()
            .any(|until| until.is_none_or(|until| now < until)))
    }

    /// The users muted in `room` whose mute holds at `now`, newest mute first.
    pub async fn room_mutes(&self, room: RoomId, now: Timestamp) -> Result<Vec<RoomMute>> {
        let muter = diesel::alias!(users as muter);
        let rows: Vec<MuteRow> = with_conn!(self, |conn| {
            room_mutes::table
                .inner_join(users::table.on(users::id.eq(room_mutes::user_id)))
                .left_join(muter.on(muter.field(users::id).nullable().eq(room_mutes::muted_by)))
                .filter(room_mutes::room_id.eq(room.get()))
                .filter(
                    room_mutes::until
                        .is_null()
                        .or(room_mutes::until.gt(now.millis())),
                )
                .order((room_mutes::created_at.desc(), room_mutes::user_id.asc()))
                .select((
                    room_mutes::user_id,
                    users::username,
                    room_mutes::until,
                    room_mutes::reason,
                    muter.field(users::username).nullable(),
                    room_mutes::created_at,
                ))
                .load(conn)
                .await?
        });
        rows.into_iter()
            .map(|(id, name, until, why, by, at)| {
                Ok(RoomMute {
                    user_id: UserId(id),
                    username: user_name(&name)?,
                    until: until.map(Timestamp),
                    reason: reason(why)?,
                    muted_by: by.as_deref().map(user_name).transpose()?,
                    created_at: Timestamp(at),
                })
            })
            .collect()
    }

    /// Makes `room` read-only (only owners and staff post) or writable again. `NotFound` if
    /// there is no such room.
    pub async fn set_read_only(&self, room: RoomId, read_only: bool) -> Result<Room> {
        let row: RoomRow = with_conn!(
            self,
            write | conn | {
                diesel::update(rooms::table.find(room.get()))
                    .set(rooms::read_only.eq(read_only))
                    .returning(RoomRow::as_returning())
                    .get_result(conn)
                    .await
                    .map_err(|e| match StoreError::from(e) {
                        StoreError::NotFound(_) => StoreError::NotFound("room"),
                        other => other,
                    })?
            }
        );
        row.into_room()
    }

    /// How many owners `room` has.
    pub async fn owner_count(&self, room: RoomId) -> Result<i64> {
        Ok(with_conn!(self, |conn| {
            memberships::table
                .filter(memberships::room_id.eq(room.get()))
                .filter(memberships::role.eq(parley_domain::Role::Owner.as_str()))
                .count()
                .get_result(conn)
                .await?
        }))
    }
}
