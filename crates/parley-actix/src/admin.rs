//! The staff routes under `/api/admin`: accounts, the audit log and the run-time guest
//! switch. Each handler parses its input and calls the engine (`parley_core`'s `admin` and
//! `audit` modules hold every rule: who may, what happens to tokens and sockets, what is
//! recorded); a missing token is 401 (the extractor), a caller who is not staff 403
//! `forbidden` (the engine).

use crate::endpoint::Routes;
use crate::error::Result;
use crate::openapi::Tag;
use crate::rest::{State, api, ok, parse_room_name, parse_user_name, run};
use crate::state::Authenticated;
use actix_web::error::JsonPayloadError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use parley_auth::Password;
use parley_core::{Actor, AuditQuery, GuestSwitch, UserDetails, UserPage};
use parley_domain::protocol::ErrorCode;
use parley_domain::{AuditEntry, Reason, User};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::{IntoParams, ToSchema};

/// The `/api/admin` routes (mounted by `rest::routes`), each with its description.
pub(crate) fn routes(r: &mut Routes<'_>) {
    use ErrorCode::*;
    let staff = |id: &str, summary: &str| {
        api(Tag::Admin, id, summary)
            .authenticated()
            .refuses(&[Forbidden])
    };
    let action = |id: &str, summary: &str, text: &str| {
        staff(id, summary)
            .describe(text)
            .body::<ActionBody>()
            .reply::<User>(StatusCode::OK, "The account as it is now.")
            .refuses(&[NotFound, InvalidField, InvalidJson, UnknownField])
    };
    r.at("/admin/users")
        .get(
            list_users,
            staff("admin_list_users", "Find accounts (staff)")
                .describe(
                    "Accounts in name order, without guests and deleted accounts. `q` keeps \
                     those whose name or e-mail contains it (case-insensitive); `after` is the \
                     previous page's `next`; `limit` 1–200, default 50.",
                )
                .query::<UserListParams>()
                .reply::<UserPage>(StatusCode::OK, "A page of accounts.")
                .refuses(&[InvalidField]),
        )
        .done();
    r.at("/admin/users/{username}")
        .get(
            show_user,
            staff("admin_show_user", "One account (staff)")
                .describe(
                    "The account (staff and active flags, last login), its rooms with its role \
                     in each, and its linked external sign-ins.",
                )
                .reply::<UserDetails>(StatusCode::OK, "The account.")
                .refuses(&[NotFound, InvalidField]),
        )
        .delete(
            delete_user,
            action(
                "admin_delete_user",
                "Delete an account, keeping its messages (staff)",
                "The body (`{\"reason\"}`) may be left out. The account is renamed \
                 `deleted.{id}` (its messages stay and show that as their author), leaves \
                 every room, loses its e-mail, password, linked sign-ins and staff flag; \
                 every token of it is refused and its sockets close with 4005 on every \
                 process. Staff cannot delete themselves (409 `conflict`).",
            )
            .refuses(&[Conflict]),
        )
        .done();
    r.at("/admin/users/{username}/promote")
        .post(
            promote,
            action(
                "admin_promote",
                "Make an account staff (staff)",
                "The body (`{\"reason\"}`) may be left out.",
            ),
        )
        .done();
    r.at("/admin/users/{username}/demote")
        .post(
            demote,
            action(
                "admin_demote",
                "Take staff rights away (staff)",
                "The body (`{\"reason\"}`) may be left out. Staff cannot demote themselves \
                 (409 `conflict`).",
            )
            .refuses(&[Conflict]),
        )
        .done();
    r.at("/admin/users/{username}/deactivate")
        .post(
            deactivate,
            action(
                "admin_deactivate",
                "Deactivate an account (staff)",
                "The body (`{\"reason\"}`) may be left out. Logins and refreshes are refused \
                 (403 `account_disabled`), every token of the account is refused at once \
                 (REST, socket handshake, `renew`), and its sockets close with 4005 on every \
                 process. Staff cannot deactivate themselves (409 `conflict`).",
            )
            .refuses(&[Conflict]),
        )
        .done();
    r.at("/admin/users/{username}/reactivate")
        .post(
            reactivate,
            action(
                "admin_reactivate",
                "Reactivate an account (staff)",
                "The body (`{\"reason\"}`) may be left out. Tokens from before the \
                 deactivation stay refused: the user logs in again.",
            ),
        )
        .done();
    r.at("/admin/users/{username}/password")
        .post(
            reset_password,
            staff("admin_reset_password", "Set an account's password (staff)")
                .describe(
                    "Password rules apply (`weak_password`). Every token issued to the account \
                     before is refused from now on and its sockets close with 4004 on every \
                     process.",
                )
                .body::<PasswordBody>()
                .reply::<User>(StatusCode::OK, "The account.")
                .refuses(&[NotFound, WeakPassword, InvalidField, MissingField]),
        )
        .done();
    r.at("/admin/audit")
        .get(
            audit,
            staff("admin_audit", "The audit log (staff)")
                .describe(
                    "Newest first. `before` is the last `id` of the previous page; `limit` \
                     1–200, default 200; `actor`, `user` and `room` keep the entries of that \
                     actor, target user or room. Entries made by the command line have the \
                     actor `cli` and no `actor_id`.",
                )
                .query::<AuditParams>()
                .reply::<Vec<AuditEntry>>(StatusCode::OK, "A page of the log.")
                .refuses(&[InvalidField]),
        )
        .done();
    r.at("/admin/guests")
        .get(
            guests,
            staff("admin_guests", "Whether guests may sign in now (staff)")
                .reply::<GuestSwitch>(StatusCode::OK, "The switch and its upper bound."),
        )
        .put(
            set_guests,
            staff(
                "admin_set_guests",
                "Turn guests on or off at run time (staff)",
            )
            .describe(
                "Stored in the database: every process follows it. The server's `guests` \
                     setting is the upper bound: while it is off, turning guests on is 403 \
                     `forbidden`. Turning them off closes every guest's socket with 4005 on \
                     every process; the guest route then answers 404 and `?guest=` is refused, \
                     as with the setting off.",
            )
            .body::<GuestsBody>()
            .reply::<GuestSwitch>(StatusCode::OK, "The switch as it is now.")
            .refuses(&[InvalidField, MissingField]),
        )
        .done();
}

/// Why (optional), for the audit log.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    /// Why, for the audit log: 1–500 characters.
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 500)]
    reason: Option<Reason>,
}

/// A body that may be left out (empty: the default).
fn optional_body<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| crate::json_error(JsonPayloadError::Deserialize(e), body.len()))
}

/// Which page of accounts.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct UserListParams {
    /// Only accounts whose name or e-mail contains this (case-insensitive).
    #[serde(default)]
    q: Option<String>,
    /// Start after this name (the previous page's `next`).
    #[serde(default)]
    after: Option<String>,
    /// Accounts per page: 1–200, default 50.
    #[serde(default)]
    limit: Option<i64>,
}

/// `GET /api/admin/users?q=&after=&limit=` → `{users, next}`.
async fn list_users(
    state: State,
    Authenticated(user): Authenticated,
    params: web::Query<UserListParams>,
) -> Result<HttpResponse> {
    let params = params.into_inner();
    let after = params
        .after
        .filter(|a| !a.is_empty())
        .map(|a| parse_user_name(&a))
        .transpose()?;
    let q = params.q.filter(|q| !q.trim().is_empty());
    let engine = state.engine.clone();
    run(&state, async move {
        ok(engine
            .admin_users(Actor::Staff(&user), q, after, params.limit)
            .await?)
    })
    .await
}

/// `GET /api/admin/users/{username}` → the account, its rooms and linked sign-ins.
async fn show_user(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let name = parse_user_name(&path)?;
    let engine = state.engine.clone();
    run(&state, async move {
        ok(engine.admin_user(Actor::Staff(&user), &name).await?)
    })
    .await
}

/// Which account-changing action a route performs.
#[derive(Clone, Copy)]
enum Change {
    Promote,
    Demote,
    Deactivate,
    Reactivate,
    Delete,
}

/// The common body of the account actions: staff check (the engine), name, reason.
async fn change(
    state: State,
    user: User,
    name: &str,
    body: &[u8],
    change: Change,
) -> Result<HttpResponse> {
    let name = parse_user_name(name)?;
    let body: ActionBody = optional_body(body)?;
    let engine = state.engine.clone();
    run(&state, async move {
        let actor = Actor::Staff(&user);
        let reason = body.reason.as_ref();
        let user = match change {
            Change::Promote => engine.set_staff(actor, &name, true, reason).await?,
            Change::Demote => engine.set_staff(actor, &name, false, reason).await?,
            Change::Deactivate => engine.set_active(actor, &name, false, reason).await?,
            Change::Reactivate => engine.set_active(actor, &name, true, reason).await?,
            Change::Delete => engine.delete_account(actor, &name, reason).await?,
        };
        ok(user)
    })
    .await
}

/// `POST /api/admin/users/{username}/promote` `{reason?}` → the account.
async fn promote(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    change(state, user, &path, &body, Change::Promote).await
}

/// `POST /api/admin/users/{username}/demote` `{reason?}` → the account.
async fn demote(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    change(state, user, &path, &body, Change::Demote).await
}

/// `POST /api/admin/users/{username}/deactivate` `{reason?}` → the account.
async fn deactivate(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    change(state, user, &path, &body, Change::Deactivate).await
}

/// `POST /api/admin/users/{username}/reactivate` `{reason?}` → the account.
async fn reactivate(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    change(state, user, &path, &body, Change::Reactivate).await
}

/// `DELETE /api/admin/users/{username}` `{reason?}` → what is left of the account.
async fn delete_user(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    change(state, user, &path, &body, Change::Delete).await
}

/// A password set by staff.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    /// The new password: 8 characters to 72 bytes, not the user name.
    #[schema(format = Password, min_length = 8)]
    password: String,
    /// Why, for the audit log.
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 500)]
    reason: Option<Reason>,
}

/// `POST /api/admin/users/{username}/password` `{password, reason?}` → the account.
async fn reset_password(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<String>,
    body: web::Json<PasswordBody>,
) -> Result<HttpResponse> {
    let name = parse_user_name(&path)?;
    let body = body.into_inner();
    let engine = state.engine.clone();
    run(&state, async move {
        let password = Password::new(body.password);
        ok(engine
            .reset_password(Actor::Staff(&user), &name, &password, body.reason.as_ref())
            .await?)
    })
    .await
}

/// Which page of the audit log.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    /// Only entries older than this id (the previous page's last).
    #[serde(default)]
    before: Option<i64>,
    /// Entries per page: 1–200, default 200.
    #[serde(default)]
    limit: Option<i64>,
    /// Only actions by this user name (`cli`: the command line's).
    #[serde(default)]
    actor: Option<String>,
    /// Only actions on this user.
    #[serde(default)]
    user: Option<String>,
    /// Only actions on this room.
    #[serde(default)]
    room: Option<String>,
}

/// `GET /api/admin/audit?before=&limit=&actor=&user=&room=` → entries, newest first.
async fn audit(
    state: State,
    Authenticated(user): Authenticated,
    params: web::Query<AuditParams>,
) -> Result<HttpResponse> {
    let p = params.into_inner();
    let name = |raw: Option<String>| {
        raw.filter(|v| !v.is_empty())
            .map(|v| parse_user_name(&v))
            .transpose()
    };
    let query = AuditQuery {
        actor: name(p.actor)?,
        target_user: name(p.user)?,
        target_room: p
            .room
            .filter(|v| !v.is_empty())
            .map(|v| parse_room_name(&v))
            .transpose()?,
        before: p.before,
        limit: p.limit.unwrap_or(0),
    };
    let engine = state.engine.clone();
    run(
        &state,
        async move { ok(engine.audit_log(&user, query).await?) },
    )
    .await
}

/// `GET /api/admin/guests` → `{enabled, allowed}`.
async fn guests(state: State, Authenticated(user): Authenticated) -> Result<HttpResponse> {
    let engine = state.engine.clone();
    run(&state, async move {
        ok(engine.guest_switch(Actor::Staff(&user)).await?)
    })
    .await
}

/// Guests on or off.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct GuestsBody {
    /// Guests may sign in and connect (within the server's `guests` setting).
    enabled: bool,
    /// Why, for the audit log.
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 500)]
    reason: Option<Reason>,
}

/// `PUT /api/admin/guests` `{enabled, reason?}` → `{enabled, allowed}`.
async fn set_guests(
    state: State,
    Authenticated(user): Authenticated,
    body: web::Json<GuestsBody>,
) -> Result<HttpResponse> {
    let body = body.into_inner();
    let engine = state.engine.clone();
    run(&state, async move {
        ok(engine
            .set_guests(Actor::Staff(&user), body.enabled, body.reason.as_ref())
            .await?)
    })
    .await
}
