//! Administration: finding accounts, their rooms and linked sign-ins, deactivation, staff
//! password resets, deleting an account while keeping its messages, default rooms, and the
//! settings staff change at run time.

use crate::error::{Result, StoreError};
use crate::rows::{RoomRow, UserRow, parse_role};
use crate::schema::{external_identities, memberships, rooms, server_settings, users};
use crate::store::{Store, with_conn};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use parley_domain::{Role, Room, RoomKind, RoomName, Timestamp, User, UserId, UserName};

diesel::define_sql_function! {
    /// SQL `lower()`, on both backends.
    fn lower(x: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
}

/// A page of accounts ([`Store::list_users`]).
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// Only accounts whose name or e-mail contains this (case-insensitive); empty: all.
    pub q: Option<String>,
    /// Start after this name (the previous page's last).
    pub after: Option<UserName>,
    /// At most this many accounts.
    pub limit: i64,
}

/// A room an account belongs to, as staff see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRoom {
    /// The room's name.
    pub name: RoomName,
    /// Public, private or direct.
    pub kind: RoomKind,
    /// The account's role there.
    pub role: Role,
    /// When the account joined it.
    pub joined_at: Timestamp,
}

/// An external sign-in (OpenID Connect) linked to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedIdentity {
    /// The provider's issuer URL.
    pub issuer: String,
    /// The account's id at that provider.
    pub subject: String,
    /// When it was linked (the first sign-in).
    pub linked_at: Timestamp,
}

/// Escapes `%`, `_` and `\` for a `LIKE` pattern with `\` as the escape character.
fn like_escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn missing(err: StoreError) -> StoreError {
    match err {
        StoreError::NotFound(_) => StoreError::NotFound("user"),
        other => other,
    }
}

impl Store {
    /// A page of accounts in name order: no guests and no deleted accounts. `q` keeps those
    /// whose name or e-mail contains it, case-insensitively.
    pub async fn list_users(&self, query: &UserQuery) -> Result<Vec<User>> {
        let pattern = query
            .q
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(|q| format!("%{}%", like_escape(&q.to_lowercase())));
        let deleted = format!("{}%", like_escape(UserName::DELETED_PREFIX));
        let rows: Vec<UserRow> = with_conn!(self, |conn| {
            let mut q = users::table
                .filter(users::is_guest.eq(false))
                .filter(users::username.not_like(&deleted).escape('\\'))
                .select(UserRow::as_select())
                .order(users::username.asc())
                .limit(query.limit.max(0))
                .into_boxed();
            if let Some(pattern) = &pattern {
                q = q.filter(
                    users::username
                        .like(pattern)
                        .escape('\\')
                        .or(lower(users::email)
                            .like(pattern)
                            .escape('\\')
                            .assume_not_null()),
                );
            }
            if let Some(after) = &query.after {
                q = q.filter(users::username.gt(after.as_str()));
            }
            q.load(conn).await?
        });
        rows.into_iter().map(UserRow::into_user).collect()
    }

    /// The rooms `user` belongs to, with its role in each, in name order.
    pub async fn user_rooms(&self, user: UserId) -> Result<Vec<UserRoom>> {
        let rows: Vec<(String, String, String, i64)> = with_conn!(self, |conn| {
            memberships::table
                .inner_join(rooms::table)
                .filter(memberships::user_id.eq(user.get()))
                .select((
                    rooms::name,
                    rooms::kind,
                    memberships::role,
                    memberships::joined_at,
                ))
                .order(rooms::name.asc())
                .load(conn)
                .await?
        });
        rows.into_iter()
            .map(|(name, kind, role, joined_at)| {
                Ok(UserRoom {
                    name: RoomName::parse(&name)
                        .map_err(|e| StoreError::corrupt("room name", e))?,
                    kind: kind
                        .parse::<RoomKind>()
                        .map_err(|e| StoreError::corrupt("room kind", e))?,
                    role: parse_role(&role)?,
                    joined_at: Timestamp(joined_at),
                })
            })
            .collect()
    }

    /// The external sign-ins linked to `user`, oldest first.
    pub async fn linked_identities(&self, user: UserId) -> Result<Vec<LinkedIdentity>> {
        let rows: Vec<(String, String, i64)> = with_conn!(self, |conn| {
            external_identities::table
                .filter(external_identities::user_id.eq(user.get()))
                .select((
                    external_identities::issuer,
                    external_identities::subject,
                    external_identities::created_at,
                ))
                .order(external_identities::created_at.asc())
                .load(conn)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(issuer, subject, at)| LinkedIdentity {
                issuer,
                subject,
                linked_at: Timestamp(at),
            })
            .collect())
    }

    /// Deactivates (`active` false) or reactivates an account and returns it. A
    /// deactivation also raises the account's token epoch, so no token issued before it is
    /// accepted again, even after a reactivation. `NotFound` if there is none.
    pub async fn set_active(&self, id: UserId, active: bool) -> Result<User> {
        let bump = i64::from(!active);
        let row: UserRow = with_conn!(
            self,
            write | conn | {
                diesel::update(users::table.find(id.get()))
                    .set((
                        users::is_active.eq(active),
                        users::token_epoch.eq(users::token_epoch + bump),
                    ))
                    .returning(UserRow::as_returning())
                    .get_result(conn)
                    .await
                    .map_err(|e| missing(e.into()))?
            }
        );
        row.into_user()
    }

    /// Replaces the password hash and raises the token epoch (every token issued before is
    /// refused from now on), for a password staff set. `NotFound` if there is none.
    pub async fn reset_password_hash(&self, id: UserId, password_hash: &str) -> Result<User> {
        let row: UserRow = with_conn!(
            self,
            write | conn | {
                diesel::update(users::table.find(id.get()))
                    .set((
                        users::password_hash.eq(password_hash),
                        users::token_epoch.eq(users::token_epoch + 1),
                    ))
                    .returning(UserRow::as_returning())
                    .get_result(conn)
                    .await
                    .map_err(|e| missing(e.into()))?
            }
        );
        row.into_user()
    }

    /// Deletes an account but keeps its messages, in one transaction: it leaves every room,
    /// loses its linked sign-ins, e-mail, password and staff flag, is deactivated (every
    /// token refused) and renamed [`UserName::deleted`] (`deleted.{id}`), the author its
    /// messages then show. Rooms it created stay. Returns the renamed row; `NotFound` if
    /// there is none. ([`Store::delete_user`] removes the row, and its messages with it.)
    pub async fn erase_user(&self, id: UserId) -> Result<User> {
        let tombstone = UserName::deleted(id);
        let row: UserRow = with_conn!(
            self,
            write | conn | {
                conn.transaction(async |conn| {
                    diesel::delete(memberships::table.filter(memberships::user_id.eq(id.get())))
                        .execute(conn)
                        .await?;
                    diesel::delete(
                        external_identities::table
                            .filter(external_identities::user_id.eq(id.get())),
                    )
                    .execute(conn)
                    .await?;
                    diesel::update(users::table.find(id.get()))
                        .set((
                            users::username.eq(tombstone.as_str()),
                            users::email.eq(None::<String>),
                            users::display_name.eq(None::<String>),
                            users::password_hash.eq("!"),
                            users::is_staff.eq(false),
                            users::is_active.eq(false),
                            users::token_epoch.eq(users::token_epoch + 1),
                        ))
                        .returning(UserRow::as_returning())
                        .get_result(conn)
                        .await
                })
                .await
                .map_err(|e| missing(e.into()))?
            }
        );
        row.into_user()
    }

    /// The ids of every guest identity (for closing their sockets when guests are turned off).
    pub async fn guest_ids(&self) -> Result<Vec<UserId>> {
        let ids: Vec<i64> = with_conn!(self, |conn| {
            users::table
                .filter(users::is_guest.eq(true))
                .select(users::id)
                .load(conn)
                .await?
        });
        Ok(ids.into_iter().map(UserId).collect())
    }

    /// The public room `name`, created without a creator (and so without an owner) if it
    /// does not exist; a room of that name of another kind is returned as it is.
    pub async fn ensure_public_room(&self, name: &RoomName) -> Result<Room> {
        if name.is_direct() {
            return Err(StoreError::Invalid(
                "'dm.' names are reserved for direct rooms".to_owned(),
            ));
        }
        let now = Timestamp::now().millis();
        let row: RoomRow = with_conn!(
            self,
            write | conn | {
                diesel::insert_into(rooms::table)
                    .values((
                        rooms::name.eq(name.as_str()),
                        rooms::kind.eq(RoomKind::Public.as_str()),
                        rooms::topic.eq(""),
                        rooms::created_at.eq(now),
                    ))
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?;
                rooms::table
                    .filter(rooms::name.eq(name.as_str()))
                    .select(RoomRow::as_select())
                    .first(conn)
                    .await?
            }
        );
        row.into_room()
    }

    /// Makes `user` a member of each of `rooms` it does not belong to yet (rooms that do not
    /// exist are skipped). Returns how many it joined.
    pub async fn join_rooms(&self, user: UserId, rooms: &[RoomName]) -> Result<usize> {
        if rooms.is_empty() {
            return Ok(0);
        }
        let names: Vec<&str> = rooms.iter().map(RoomName::as_str).collect();
        let now = Timestamp::now().millis();
        let n = with_conn!(
            self,
            write | conn | {
                let ids: Vec<i64> = rooms::table
                    .filter(rooms::name.eq_any(&names))
                    .select(rooms::id)
                    .load(conn)
                    .await?;
                let mut joined = 0;
                for room in ids {
                    joined += diesel::insert_into(memberships::table)
                        .values((
                            memberships::room_id.eq(room),
                            memberships::user_id.eq(user.get()),
                            memberships::role.eq(Role::Member.as_str()),
                            memberships::joined_at.eq(now),
                        ))
                        .on_conflict_do_nothing()
                        .execute(conn)
                        .await?;
                }
                joined
            }
        );
        Ok(n)
    }

    /// The value of the run-time setting `name`, if one was stored.
    pub async fn setting(&self, name: &str) -> Result<Option<String>> {
        Ok(with_conn!(self, |conn| {
            server_settings::table
                .find(name)
                .select(server_settings::value)
                .first::<String>(conn)
                .await
                .optional()?
        }))
    }

    /// Stores the run-time setting `name`.
    pub async fn set_setting(&self, name: &str, value: &str) -> Result<()> {
        let now = Timestamp::now().millis();
        with_conn!(
            self,
            write | conn | {
                diesel::insert_into(server_settings::table)
                    .values((
                        server_settings::name.eq(name),
                        server_settings::value.eq(value),
                        server_settings::updated_at.eq(now),
                    ))
                    .on_conflict(server_settings::name)
                    .do_update()
                    .set((
                        server_settings::value.eq(value),
                        server_settings::updated_at.eq(now),
                    ))
                    .execute(conn)
                    .await?
            }
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::like_escape;

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(like_escape("a_b%c\\d"), "a\\_b\\%c\\\\d");
    }
}
