//! Accounts.

use crate::error::{Result, StoreError};
use crate::rows::UserRow;
use crate::schema::{external_identities, guest_bans, memberships, messages, users};
use crate::store::{Store, with_conn};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use parley_domain::{DisplayName, Email, Timestamp, User, UserId, UserName};

/// A user to create. The password arrives already hashed (parley-auth owns hashing).
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Unique handle.
    pub username: UserName,
    /// Optional contact address.
    pub email: Option<Email>,
    /// Optional name shown beside the user name.
    pub display_name: Option<DisplayName>,
    /// bcrypt hash of the password.
    pub password_hash: String,
    /// Staff flag.
    pub is_staff: bool,
    /// A guest identity (see `User::is_guest`): no usable password, never staff.
    pub is_guest: bool,
}

/// A user with the hash to check a login against.
#[derive(Clone)]
pub struct Credentials {
    /// The account.
    pub user: User,
    /// Its bcrypt password hash.
    pub password_hash: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password_hash", &"***")
            .finish()
    }
}

/// The text of the `Conflict` [`Store::update_profile`] answers for an e-mail address
/// another account uses.
pub const EMAIL_TAKEN: &str = "email taken";

fn taken(err: StoreError, username: &UserName) -> StoreError {
    match err {
        StoreError::Conflict(_) => StoreError::Conflict(format!("user name {username} is taken")),
        other => other,
    }
}

fn missing(err: StoreError) -> StoreError {
    match err {
        StoreError::NotFound(_) => StoreError::NotFound("user"),
        other => other,
    }
}

impl Store {
    /// Creates an account. `Conflict` if the name is taken.
    pub async fn create_user(&self, new: &NewUser) -> Result<User> {
        let now = Timestamp::now().millis();
        let row: UserRow = with_conn!(
            self,
            write | conn | {
                diesel::insert_into(users::table)
                    .values((
                        users::username.eq(new.username.as_str()),
                        users::email.eq(new.email.as_ref().map(Email::as_str)),
                        users::display_name.eq(new.display_name.as_ref().map(DisplayName::as_str)),
                        users::password_hash.eq(&new.password_hash),
                        users::is_staff.eq(new.is_staff && !new.is_guest),
                        users::is_guest.eq(new.is_guest),
                        users::created_at.eq(now),
                    ))
                    .returning(UserRow::as_returning())
                    .get_result(conn)
                    .await
                    .map_err(|e| taken(e.into(), &new.username))?
            }
        );
        tracing::debug!(user = %row.username, id = row.id, "created user");
        row.into_user()
    }

    /// The account with this id; `NotFound` if there is none.
    pub async fn user_by_id(&self, id: UserId) -> Result<User> {
        let row: UserRow = with_conn!(self, |conn| {
            users::table
                .find(id.get())
                .select(UserRow::as_select())
                .first(conn)
                .await
                .map_err(|e| missing(e.into()))?
        });
        row.into_user()
    }

    /// [`Store::user_by_id`] on the connections kept for authentication
    /// ([`crate::StoreOptions::account_connections`]): the read every authenticated request
    /// and socket handshake makes, which must not queue behind chat work. Always read from
    /// the database, never remembered, so that a deactivation, a new token epoch or a
    /// deleted account counts at once.
    pub async fn account_for_auth(&self, id: UserId) -> Result<User> {
        let row: UserRow = with_conn!(
            self,
            accounts | conn | {
                users::table
                    .find(id.get())
                    .select(UserRow::as_select())
                    .first(conn)
                    .await
                    .map_err(|e| missing(e.into()))?
            }
        );
        row.into_user()
    }

    /// The account with this name; `NotFound` if there is none.
    pub async fn user_by_name(&self, name: &UserName) -> Result<User> {
        Ok(self.credentials(name).await?.user)
    }

    /// The account and its password hash, for login; `NotFound` if there is none.
    pub async fn credentials(&self, name: &UserName) -> Result<Credentials> {
        let (row, password_hash): (UserRow, String) = with_conn!(self, |conn| {
            users::table
                .filter(users::username.eq(name.as_str()))
                .select((UserRow::as_select(), users::password_hash))
                .first(conn)
                .await
                .map_err(|e| missing(e.into()))?
        });
        Ok(Credentials {
            user: row.into_user()?,
            password_hash,
        })
    }

    /// Records a successful login at `at` and returns the updated account.
    pub async fn record_login(&self, id: UserId, at: Timestamp) -> Result<User> {
        let row: UserRow = with_conn!(
            self,
            write | conn | {
                diesel::update(users::table.find(id.get()))
                    .set(users::last_login.eq(Some(at.millis())))
                    .returning(UserRow::as_returning())
                    .get_result(conn)
                    .await
                    .map_err(|e| missing(e.into()))?
            }
        );
        row.into_user()
    }

    /// Replaces the password hash.
    pub async fn set_password_hash(&self, id: UserId, password_hash: &str) -> Result<()> {
        let n = with_conn!(
            self,
            write | conn | {
                diesel::update(users::table.find(id.get()))
                    .set(users::password_hash.eq(password_hash))
                    .execute(conn)
                    .await?
            }
        );
        if n == 0 {
            Err(StoreError::NotFound("user"))
        } else {
            Ok(())
        }
    }

    /// Changes what a user says about themselves (issue 15): `display_name` and `email`
    /// are each left alone when `None`, cleared with `Some(None)`, set with `Some(Some(_))`.
    /// An e-mail address another account already uses (compared case-insensitively) is
    /// refused with `Conflict` ("email taken"), checked in the same transaction as the
    /// write. Returns the updated account; `NotFound` if there is none.
    pub async fn update_profile(
        &self,
        id: UserId,
        display_name: Option<Option<&DisplayName>>,
        email: Option<Option<&Email>>,
    ) -> Result<User> {
        diesel::define_sql_function! {
            /// SQL `lower`, on both backends.
            fn lower(x: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
        }
        let row: UserRow = with_conn!(
            self,
            write | conn | {
                conn.transaction(async |conn| {
                    if let Some(Some(email)) = email {
                        let wanted = email.as_str().to_lowercase();
                        let clash: i64 = users::table
                            .filter(lower(users::email).eq(Some(wanted)))
                            .filter(users::id.ne(id.get()))
                            .count()
                            .get_result(conn)
                            .await?;
                        if clash > 0 {
                            return Err(StoreError::Conflict(EMAIL_TAKEN.to_owned()));
                        }
                    }
                    let current: UserRow = users::table
                        .find(id.get())
                        .select(UserRow::as_select())
                        .first(conn)
                        .await?;
                    let display = match display_name {
                        Some(d) => d.map(|d| d.as_str().to_owned()),
                        None => current.display_name.clone(),
                    };
                    let mail = match email {
                        Some(e) => e.map(|e| e.as_str().to_owned()),
                        None => current.email.clone(),
                    };
                    diesel::update(users::table.find(id.get()))
                        .set((users::display_name.eq(display), users::email.eq(mail)))
                        .returning(UserRow::as_returning())
                        .get_result(conn)
                        .await
                        .map_err(StoreError::from)
                })
                .await
                .map_err(missing)?
            }
        );
        row.into_user()
    }

    /// Grants or withdraws staff rights and returns the updated account.
    pub async fn set_staff(&self, id: UserId, is_staff: bool) -> Result<User> {
        let row: UserRow = with_conn!(
            self,
            write | conn | {
                diesel::update(users::table.find(id.get()))
                    .set(users::is_staff.eq(is_staff))
                    .returning(UserRow::as_returning())
                    .get_result(conn)
                    .await
                    .map_err(|e| missing(e.into()))?
            }
        );
        row.into_user()
    }

    /// Clears away guests made before `created_before` (whose only token has expired by
    /// then, so nobody can act as them any more): a guest who never posted is deleted with
    /// its memberships; one who did stays as the author of its messages (history keeps
    /// them) but leaves every room, so member lists forget it. Returns how many guests were
    /// deleted.
    pub async fn prune_guests(&self, created_before: Timestamp) -> Result<usize> {
        let cutoff = created_before.millis();
        let deleted = with_conn!(
            self,
            write | conn | {
                let stale = users::table
                    .filter(users::is_guest.eq(true))
                    .filter(users::created_at.lt(cutoff))
                    .select(users::id);
                diesel::delete(memberships::table.filter(memberships::user_id.eq_any(stale)))
                    .execute(conn)
                    .await?;
                diesel::delete(
                    users::table
                        .filter(users::is_guest.eq(true))
                        .filter(users::created_at.lt(cutoff))
                        .filter(diesel::dsl::not(diesel::dsl::exists(
                            messages::table.filter(messages::sender_id.eq(users::id)),
                        ))),
                )
                .execute(conn)
                .await?
            }
        );
        if deleted > 0 {
            tracing::debug!(deleted, "pruned stale guests");
        }
        Ok(deleted)
    }

    /// Bans the guest name `name` (the name a guest chooses, not `guest.{name}.{tag}`).
    /// False if it was banned already.
    pub async fn ban_guest_name(&self, name: &UserName) -> Result<bool> {
        let now = Timestamp::now().millis();
        let n = with_conn!(
            self,
            write | conn | {
                diesel::insert_into(guest_bans::table)
                    .values((
                        guest_bans::name.eq(name.as_str()),
                        guest_bans::created_at.eq(now),
                    ))
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?
            }
        );
        Ok(n > 0)
    }

    /// Lifts the ban of the guest name `name`. False if it was not banned.
    pub async fn unban_guest_name(&self, name: &UserName) -> Result<bool> {
        let n = with_conn!(
            self,
            write | conn | {
                diesel::delete(guest_bans::table.find(name.as_str()))
                    .execute(conn)
                    .await?
            }
        );
        Ok(n > 0)
    }

    /// Whether the guest name `name` is banned.
    pub async fn guest_name_banned(&self, name: &str) -> Result<bool> {
        let n: i64 = with_conn!(self, |conn| {
            guest_bans::table
                .filter(guest_bans::name.eq(name))
                .count()
                .get_result(conn)
                .await?
        });
        Ok(n > 0)
    }

    /// The guests who chose the name `name` (user names `guest.{name}.{tag}`).
    pub async fn guests_named(&self, name: &UserName) -> Result<Vec<UserId>> {
        // `_` is a LIKE wildcard and a name character: escape it (`%` and `\` cannot occur).
        let pattern = format!(
            "{}{}.%",
            UserName::GUEST_PREFIX,
            name.as_str().replace('_', "\\_")
        );
        let rows: Vec<(i64, String)> = with_conn!(self, |conn| {
            users::table
                .filter(users::is_guest.eq(true))
                .filter(users::username.like(&pattern).escape('\\'))
                .select((users::id, users::username))
                .load(conn)
                .await?
        });
        // `guest.a.%` also matches the guests who chose `a.b`: keep the exact name.
        Ok(rows
            .into_iter()
            .filter(|(_, username)| {
                UserName::parse(username).is_ok_and(|u| u.guest_display() == Some(name.as_str()))
            })
            .map(|(id, _)| UserId(id))
            .collect())
    }

    /// Deletes an account with its memberships and messages (rooms it created stay, with no
    /// creator). `NotFound` if there is none.
    pub async fn delete_user(&self, id: UserId) -> Result<()> {
        let n = with_conn!(
            self,
            write | conn | {
                diesel::delete(users::table.find(id.get()))
                    .execute(conn)
                    .await?
            }
        );
        if n == 0 {
            Err(StoreError::NotFound("user"))
        } else {
            Ok(())
        }
    }

    /// The account linked to an external identity (an OpenID Connect issuer and subject),
    /// if any.
    pub async fn user_by_external(&self, issuer: &str, subject: &str) -> Result<Option<User>> {
        let row: Option<UserRow> = with_conn!(self, |conn| {
            external_identities::table
                .inner_join(users::table)
                .filter(external_identities::issuer.eq(issuer))
                .filter(external_identities::subject.eq(subject))
                .select(UserRow::as_select())
                .first(conn)
                .await
                .optional()?
        });
        row.map(UserRow::into_user).transpose()
    }

    /// Creates an account linked to an external identity, in one transaction. `Conflict` if
    /// the user name is taken or the identity is already linked.
    pub async fn create_external_user(
        &self,
        new: &NewUser,
        issuer: &str,
        subject: &str,
    ) -> Result<User> {
        let now = Timestamp::now().millis();
        let row: UserRow = with_conn!(
            self,
            write | conn | {
                conn.transaction(async |conn| {
                    let user: UserRow = diesel::insert_into(users::table)
                        .values((
                            users::username.eq(new.username.as_str()),
                            users::email.eq(new.email.as_ref().map(Email::as_str)),
                            users::display_name
                                .eq(new.display_name.as_ref().map(DisplayName::as_str)),
                            users::password_hash.eq(&new.password_hash),
                            users::is_staff.eq(new.is_staff),
                            users::created_at.eq(now),
                        ))
                        .returning(UserRow::as_returning())
                        .get_result(conn)
                        .await?;
                    diesel::insert_into(external_identities::table)
                        .values((
                            external_identities::issuer.eq(issuer),
                            external_identities::subject.eq(subject),
                            external_identities::user_id.eq(user.id),
                            external_identities::created_at.eq(now),
                        ))
                        .execute(conn)
                        .await?;
                    Ok::<_, diesel::result::Error>(user)
                })
                .await
                .map_err(StoreError::from)?
            }
        );
        row.into_user()
    }

    /// The accounts (not guests) whose email is `email`, compared without regard to case; at
    /// most `limit`. For linking an external sign-in to an existing account by its email.
    pub async fn users_by_email(&self, email: &Email, limit: i64) -> Result<Vec<User>> {
        let wanted = email.as_str().to_lowercase();
        let rows: Vec<UserRow> = with_conn!(self, |conn| {
            users::table
                .filter(users::email.is_not_null())
                .filter(users::is_guest.eq(false))
                .filter(
                    diesel::dsl::sql::<diesel::sql_types::Bool>("lower(email) = ")
                        .bind::<diesel::sql_types::Text, _>(wanted.clone()),
                )
                .order(users::id)
                .limit(limit)
                .select(UserRow::as_select())
                .load(conn)
                .await?
        });
        rows.into_iter().map(UserRow::into_user).collect()
    }

    /// Links an external identity (an OpenID Connect issuer and subject) to an existing
    /// account. `Conflict` if the identity is already linked, `NotFound` if the account is
    /// gone.
    pub async fn link_external(&self, id: UserId, issuer: &str, subject: &str) -> Result<()> {
        let now = Timestamp::now().millis();
        with_conn!(
            self,
            write | conn | {
                diesel::insert_into(external_identities::table)
                    .values((
                        external_identities::issuer.eq(issuer),
                        external_identities::subject.eq(subject),
                        external_identities::user_id.eq(id.get()),
                        external_identities::created_at.eq(now),
                    ))
                    .execute(conn)
                    .await?
            }
        );
        Ok(())
    }
}
