//! The REST API under `/api`: accounts and tokens, rooms, members, history, presence,
//! direct rooms. Each handler parses its input, calls `parley-auth` or the engine's rooms
//! service ([`parley_core::Rooms`], where every access rule lives) and maps the answer or
//! the error; none decides who may do what. [`routes`] mounts each with its OpenAPI
//! description; the bodies and query strings derive their schemas (`ToSchema`, `IntoParams`).

use crate::conn_limit::address_key;
use crate::endpoint::Routes;
use crate::error::{ApiError, Result};
use crate::openapi::{Doc, Tag};
use crate::state::{AppState, Authenticated};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use parley_auth::{GuestLogin, LoginResponse, Password, Refreshed};
use parley_core::{
    HistoryQuery, MemberAdded, RoomChanges, RoomDetails, RoomHistory, RoomList, RoomListQuery,
    RoomScope, SearchRequest, SearchResults,
};
use parley_domain::protocol::ErrorCode;
use parley_domain::{
    Email, Membership, MessageId, Role, Room, RoomKind, RoomName, Topic, User, UserName,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::future::Future;
use utoipa::{IntoParams, ToSchema};

pub(crate) type State = web::Data<AppState>;

/// A handler's answer, built on the application runtime (an `HttpResponse` is not `Send`).
pub(crate) struct Reply(StatusCode, Option<Value>);

pub(crate) fn ok(body: impl Serialize) -> Result<Reply> {
    to_reply(StatusCode::OK, body)
}

pub(crate) fn created(body: impl Serialize) -> Result<Reply> {
    to_reply(StatusCode::CREATED, body)
}

pub(crate) fn no_content() -> Result<Reply> {
    Ok(Reply(StatusCode::NO_CONTENT, None))
}

fn to_reply(status: StatusCode, body: impl Serialize) -> Result<Reply> {
    let body = serde_json::to_value(body).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Reply(status, Some(body)))
}

/// Runs a handler's work on the application runtime (see [`AppState::offload`]).
pub(crate) async fn run<Fut>(state: &State, work: Fut) -> Result<HttpResponse>
where
    Fut: Future<Output = Result<Reply>> + Send + 'static,
{
    let Reply(status, body) = state.offload(work).await??;
    Ok(match body {
        Some(body) => HttpResponse::build(status).json(body),
        None => HttpResponse::build(status).finish(),
    })
}

/// The description of a REST operation: any of them can meet a database that is down.
pub(crate) fn api(tag: Tag, id: &str, summary: &str) -> Doc {
    Doc::new(tag, id, summary).refuses(&[ErrorCode::Unavailable, ErrorCode::Internal])
}

/// The `/api` routes, each with its description.
pub(crate) fn routes(r: &mut Routes<'_>) {
    use ErrorCode::*;
    use Tag::{Accounts, Rooms};
    let page = "A page of at most `limit` rooms (1–200, default 100) in name order; `next` is \
                the `after` of the next page (`null` on the last). `q` keeps the names starting \
                with it.";

    r.at("/openapi.json")
        .get(
            crate::openapi::serve_document,
            crate::openapi::document_doc(),
        )
        .done();
    r.at("/auth/register")
        .post(
            register,
            api(Accounts, "register", "Create an account")
                .describe(
                    "Passwords: 8 characters to 72 bytes, not the user name. Limited per \
                     client address (`auth_rate`, `auth_burst`).",
                )
                .body::<RegisterBody>()
                .reply::<User>(StatusCode::CREATED, "The new account.")
                .refuses(&[WeakPassword, UsernameTaken, InvalidDisplayName, RateLimited]),
        )
        .done();
    r.at("/auth/login")
        .post(
            login,
            api(Accounts, "login", "Log in: an access and a refresh token")
                .describe(
                    "A wrong password and an unknown user get the same 401, after the same \
                     work. Limited per client address and, for failed logins, per account \
                     (docs/api.md).",
                )
                .body::<LoginBody>()
                .reply::<LoginResponse>(StatusCode::OK, "The tokens and the account.")
                .refuses(&[InvalidCredentials, RateLimited]),
        )
        .done();
    r.at("/auth/guest")
        .get(
            guests_allowed,
            api(Accounts, "guests_allowed", "Whether guests may sign in")
                .describe(
                    "204 when the server's `guests` setting is on, 404 otherwise: what a client \
                     asks before offering \"Continue as guest\".",
                )
                .reply_empty(StatusCode::NO_CONTENT, "Guests may sign in.")
                .refuses(&[NotFound]),
        )
        .post(
            guest,
            api(
                Accounts,
                "guest",
                "Continue as a guest: an access token, no account",
            )
            .describe(
                "Only when the server's `guests` setting is on; otherwise 404. The guest \
                     chooses a name (a valid user name of at most 20 characters) and gets a \
                     user named `guest.{name}.{tag}` flagged `is_guest`, with an access token \
                     and no refresh token. Guests join, read and post in public rooms only. \
                     Limited per client address (`auth_rate`, `auth_burst`).",
            )
            .body::<GuestBody>()
            .reply::<GuestLogin>(StatusCode::OK, "The guest's access token and identity.")
            .refuses(&[InvalidField, NotFound, RateLimited, GuestNotAllowed]),
        )
        .done();
    r.at("/auth/refresh")
        .post(
            refresh,
            api(
                Accounts,
                "refresh",
                "Trade a refresh token for a new access token",
            )
            .describe(
                "With `refresh_rotation` on (the default) the answer carries a new refresh \
                     token too and the presented one is revoked; presenting it again answers \
                     `token_revoked` and revokes every token of its login. With it off the \
                     answer is `{\"access\"}` only and the refresh token stays valid until it \
                     expires or is logged out (simplejwt's `ROTATE_REFRESH_TOKENS = False`).",
            )
            .body::<RefreshBody>()
            .reply::<Refreshed>(StatusCode::OK, "A new access token (and refresh token).")
            .refuses(&[
                TokenInvalid,
                TokenExpired,
                TokenRevoked,
                WrongTokenType,
                RateLimited,
            ]),
        )
        .done();
    r.at("/auth/logout")
        .post(
            logout,
            api(Accounts, "logout", "Log out")
                .describe(
                    "Revokes the refresh token and every token of its login; the sockets that \
                     login opened close (4004), on every process.",
                )
                .body::<RefreshBody>()
                .reply_empty(StatusCode::NO_CONTENT, "Logged out.")
                .refuses(&[TokenInvalid, TokenExpired, TokenRevoked, WrongTokenType]),
        )
        .done();
    #[cfg(feature = "oidc")]
    crate::oidc::routes(r);
    crate::profile::routes(r);
    r.at("/config")
        .get(
            client_config,
            api(
                Accounts,
                "client_config",
                "What a signed-in client needs: ICE servers for calls",
            )
            .describe(
                "The STUN and TURN servers for `RTCPeerConnection` (the `ice_servers` \
                     setting). With a `turn_secret` configured, TURN URLs carry a credential \
                     minted for this user under the TURN REST convention (coturn's \
                     `use-auth-secret`): `username` is `<expiry unix seconds>:<user id>`, \
                     `credential` is base64(HMAC-SHA1(secret, username)), valid until \
                     `ice_expires_at`.",
            )
            .authenticated()
            .reply::<parley_core::ClientConfig>(StatusCode::OK, "The client configuration."),
        )
        .done();
    r.at("/me/rooms")
        .get(
            my_rooms,
            api(Rooms, "my_rooms", "The rooms the user belongs to")
                .describe(page)
                .authenticated()
                .query::<RoomListParams>()
                .reply::<RoomList>(StatusCode::OK, "A page of the user's rooms."),
        )
        .done();
    r.at("/rooms")
        .get(
            list_rooms,
            api(Rooms, "list_rooms", "The public rooms")
                .describe(page)
                .authenticated()
                .query::<RoomListParams>()
                .reply::<RoomList>(StatusCode::OK, "A page of the public rooms."),
        )
        .post(
            create_room,
            api(Rooms, "create_room", "Create a room")
                .describe(
                    "The user becomes its owner. `dm.` names are reserved for direct rooms. \
                     Limited per user (`room_create_rate`, `room_create_burst`).",
                )
                .authenticated()
                .body::<CreateRoomBody>()
                .reply::<Room>(StatusCode::CREATED, "The new room.")
                .refuses(&[InvalidRoomName, Conflict, RateLimited, GuestNotAllowed]),
        )
        .done();
    r.at("/rooms/{room}")
        .get(
            get_room,
            api(Rooms, "get_room", "A room, its members and who is online")
                .describe(
                    "A public room: anyone; otherwise its members and staff. A user banned \
                     from the room: `banned` (staff still see it).",
                )
                .authenticated()
                .reply::<RoomDetails>(
                    StatusCode::OK,
                    "The room, the user's role, members, online.",
                )
                .refuses(&[NotFound, NotMember, Banned]),
        )
        .patch(
            update_room,
            api(
                Rooms,
                "update_room",
                "Rename a room, change its topic or visibility, make it read-only",
            )
            .describe(
                "Its owner or staff. After a rename, joined sockets receive `left` for the \
                     old name. `read_only: true`: only the room's owners and staff may post \
                     (others' `send` and `edit` answer `read_only`), at once on every \
                     process; `false` undoes it. `kind`: `public` or `private`; making a room \
                     private ends its guests' memberships (their sockets receive `left`). \
                     Group rooms only (`invalid_field`). Each change is recorded in the \
                     audit log.",
            )
            .authenticated()
            .body::<UpdateRoomBody>()
            .reply::<Room>(StatusCode::OK, "The room as changed.")
            .refuses(&[
                InvalidRoomName,
                InvalidField,
                NotFound,
                Forbidden,
                NotMember,
                Conflict,
            ]),
        )
        .delete(
            delete_room,
            api(Rooms, "delete_room", "Delete a room")
                .describe("Its owner or staff. Joined sockets receive `left`.")
                .authenticated()
                .reply_empty(StatusCode::NO_CONTENT, "Deleted.")
                .refuses(&[NotFound, Forbidden, NotMember]),
        )
        .done();
    r.at("/rooms/{room}/members")
        .post(
            add_member,
            api(
                Rooms,
                "add_member",
                "Add a member, or change a member's role",
            )
            .describe(
                "The room's owner or staff; a direct room's members are fixed. A user banned \
                 from the room is refused (`banned`). Changing a member's role follows the \
                 rules of `set_role`.",
            )
            .authenticated()
            .body::<AddMemberBody>()
            .reply::<Membership>(StatusCode::CREATED, "The new membership.")
            .reply::<Membership>(
                StatusCode::OK,
                "The user already was a member; the membership with the role asked for.",
            )
            .refuses(&[
                NotFound,
                Forbidden,
                NotMember,
                GuestNotAllowed,
                Banned,
                Conflict,
            ]),
        )
        .done();
    r.at("/rooms/{room}/members/{user}")
        .patch(
            set_role,
            api(Rooms, "set_role", "Change a member's role")
                .describe(
                    "The room's owner or staff. A room keeps an owner: making its last owner \
                     a member is `conflict`. The member's sockets apply the new role at once \
                     (an owner posts in a read-only room). Recorded in the audit log when \
                     done to someone else.",
                )
                .authenticated()
                .body::<SetRoleBody>()
                .reply::<Membership>(StatusCode::OK, "The membership with its new role.")
                .refuses(&[NotFound, Forbidden, NotMember, GuestNotAllowed, Conflict]),
        )
        .delete(
            remove_member,
            api(Rooms, "remove_member", "Remove a member")
                .describe(
                    "The room's owner or staff, or the member themself. The member's sockets \
                     receive `left`. A public room's removed member may join again: to keep \
                     them out, ban them (`/rooms/{room}/bans/{user}`).",
                )
                .authenticated()
                .reply_empty(StatusCode::NO_CONTENT, "Removed.")
                .refuses(&[NotFound, Forbidden, NotMember]),
        )
        .done();
    r.at("/rooms/{room}/messages")
        .get(
            messages,
            api(Rooms, "messages", "A page of a room's history")
                .describe(
                    "A public room: anyone; otherwise its members (not staff). `before` and \
                     `after` are message ids; oldest first; deleted messages are tombstones. \
                     A user banned from the room: `banned`.",
                )
                .authenticated()
                .query::<HistoryParams>()
                .reply::<RoomHistory>(StatusCode::OK, "The messages, oldest first.")
                .refuses(&[NotFound, NotMember, Banned]),
        )
        .done();
    r.at("/search")
        .get(
            search,
            api(Rooms, "search", "Search the messages the user may read")
                .describe(
                    "Full-text search, newest first, over every room the user may read now \
                     (public rooms and rooms they are a member of, never a room they are \
                     banned from; staff status does not widen it), or only `room`. `q` is \
                     split into words (letters and digits); a result holds every word, whole \
                     and case-insensitively; nothing in `q` is query syntax. Deleted messages \
                     are never found; edited ones by their new text. Each result carries the \
                     message record and a `snippet` as text segments, matching words marked \
                     `hit` (render as text, never HTML). Page with `before=<next_before>`; \
                     `limit` 1–50, default 20. An empty `q` (no word), more than 200 \
                     characters or 16 words: `invalid_field`.",
                )
                .authenticated()
                .query::<SearchParams>()
                .reply::<SearchResults>(StatusCode::OK, "A page of results, newest first.")
                .refuses(&[InvalidField, InvalidRoomName, NotFound, NotMember, Banned]),
        )
        .done();
    r.at("/rooms/{room}/online")
        .get(
            online,
            api(Rooms, "online", "Who is online in a room")
                .describe("Across every server process sharing the channel layer.")
                .authenticated()
                .reply::<RoomOnline>(StatusCode::OK, "The user names of those online.")
                .refuses(&[NotFound, NotMember]),
        )
        .done();
    r.at("/guests/bans/{username}")
        .post(
            ban_guest_name,
            api(Accounts, "ban_guest_name", "Ban a guest name (staff)")
                .describe(
                    "Only when guests are on (404 otherwise). No guest may sign in under the \
                     name (the name a guest chooses, 3–20 characters), and the sockets of \
                     guests using it close on every process and are refused from then on.",
                )
                .authenticated()
                .reply::<GuestBan>(StatusCode::OK, "The name, and how many guests used it.")
                .refuses(&[NotFound, Forbidden, InvalidField]),
        )
        .delete(
            unban_guest_name,
            api(
                Accounts,
                "unban_guest_name",
                "Lift a guest name's ban (staff)",
            )
            .describe("Only when guests are on (404 otherwise).")
            .authenticated()
            .reply_empty(StatusCode::NO_CONTENT, "The name may be chosen again.")
            .refuses(&[NotFound, Forbidden, InvalidField]),
        )
        .done();
    r.at("/direct/{username}")
        .post(
            direct,
            api(Rooms, "direct", "Open the direct (1:1) room with a user")
                .describe(
                    "Created on first use (`dm.{low id}.{high id}`). A new direct room costs a \
                     room creation, and so does a name that is nobody's (404): past the burst \
                     both are 429 alike, so names cannot be enumerated.",
                )
                .authenticated()
                .reply::<Room>(StatusCode::OK, "The direct room.")
                .refuses(&[NotFound, RateLimited, GuestNotAllowed]),
        )
        .done();
    crate::admin::routes(r);
    crate::moderation::routes(r);
}

/// A new account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    /// The handle to log in with.
    #[schema(value_type = UserName)]
    username: String,
    /// 8 characters to 72 bytes (bcrypt reads no further), not the user name.
    #[schema(format = Password, min_length = 8)]
    password: String,
    /// A contact address.
    #[serde(default)]
    #[schema(value_type = Option<Email>)]
    email: Option<String>,
    /// The name shown beside the user name: at most 64 characters after trimming, no
    /// control characters (`invalid_display_name`); empty or absent: none.
    #[serde(default)]
    display_name: Option<String>,
}

/// `POST /api/auth/register` → 201 with the user.
async fn register(
    req: HttpRequest,
    state: State,
    body: web::Json<RegisterBody>,
) -> Result<HttpResponse> {
    state.auth_limiter.check(state.client_ip(req.head()))?;
    let body = body.into_inner();
    let auth = state.auth.clone();
    run(&state, async move {
        let password = Password::new(body.password);
        created(
            auth.register_with_profile(
                &body.username,
                &password,
                body.email.as_deref(),
                body.display_name.as_deref(),
            )
            .await?,
        )
    })
    .await
}

/// Credentials.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    /// The user name (case-insensitive).
    username: String,
    /// The password.
    #[schema(format = Password)]
    password: String,
}

/// `POST /api/auth/login` → `{access, refresh, user}`.
async fn login(req: HttpRequest, state: State, body: web::Json<LoginBody>) -> Result<HttpResponse> {
    state.auth_limiter.check(state.client_ip(req.head()))?;
    let body = body.into_inner();
    let peer = state.client_ip(req.head()).map(address_key);
    // Counted against the account's failure allowance until the password check ends.
    let attempt = state.account_limiter.begin(&body.username, peer)?;
    let auth = state.auth.clone();
    run(&state, async move {
        let result = auth
            .login(&body.username, &Password::new(body.password))
            .await;
        match &result {
            Ok(_) => attempt.succeeded(),
            Err(parley_auth::AuthError::InvalidCredentials) => attempt.failed(),
            Err(_) => drop(attempt),
        }
        ok(result?)
    })
    .await
}

/// A guest's chosen name.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct GuestBody {
    /// The name to show: a valid user name (letters, digits, `_`, `-`, `.`, starting with a
    /// letter) of 3 to 20 characters.
    #[schema(value_type = UserName, max_length = 20)]
    name: String,
}

/// `GET /api/auth/guest` → 204 when guests are on (the setting, unless staff turned them
/// off at run time), 404 otherwise.
async fn guests_allowed(state: State) -> Result<HttpResponse> {
    let engine = state.engine.clone();
    if state
        .offload(async move { engine.guests_enabled().await })
        .await??
    {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found("guests are not enabled on this server"))
    }
}

/// `POST /api/auth/guest` → `{access, user}` when guests are on, 404 otherwise (whatever
/// the body: the route must look absent, so the body is judged only after the setting).
async fn guest(
    req: HttpRequest,
    state: State,
    body: Result<web::Json<GuestBody>, actix_web::Error>,
) -> actix_web::Result<HttpResponse> {
    let engine = state.engine.clone();
    let on = state
        .offload(async move { engine.guests_enabled().await })
        .await?
        .map_err(ApiError::from)?;
    if !on {
        return Err(ApiError::not_found("guests are not enabled on this server").into());
    }
    state.auth_limiter.check(state.client_ip(req.head()))?;
    let body = body?.into_inner();
    let auth = state.auth.clone();
    Ok(run(&state, async move { ok(auth.guest(&body.name).await?) }).await?)
}

/// A banned guest name.
#[derive(Serialize, ToSchema)]
struct GuestBan {
    /// The name.
    #[schema(value_type = UserName)]
    name: String,
    /// How many guests were using it (their sockets closed).
    signed_out: usize,
}

/// The checks every staff guest route starts with: 404 while guests are off (whatever the
/// credentials), then the caller and the name.
fn guest_admin(
    state: &State,
    user: Result<Authenticated, ApiError>,
    name: &str,
) -> Result<(User, UserName)> {
    if !state.engine.config().guests.enabled {
        return Err(ApiError::not_found("guests are not enabled on this server"));
    }
    let Authenticated(user) = user?;
    Ok((user, parse_user_name(name)?))
}

/// `POST /api/guests/bans/{username}` → `{name, signed_out}` (staff).
async fn ban_guest_name(
    state: State,
    user: Result<Authenticated, ApiError>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let (user, name) = guest_admin(&state, user, &path)?;
    let engine = state.engine.clone();
    run(&state, async move {
        let signed_out = engine.ban_guest_name(&user, &name).await?;
        ok(GuestBan {
            name: name.into_string(),
            signed_out,
        })
    })
    .await
}

/// `DELETE /api/guests/bans/{username}` → 204 (staff).
async fn unban_guest_name(
    state: State,
    user: Result<Authenticated, ApiError>,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let (user, name) = guest_admin(&state, user, &path)?;
    let engine = state.engine.clone();
    run(&state, async move {
        engine.unban_guest_name(&user, &name).await?;
        no_content()
    })
    .await
}

/// A refresh token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    /// The refresh token of a login or an earlier refresh.
    refresh: String,
}

/// `POST /api/auth/refresh` → a new `{access, refresh}`; the presented token is revoked.
async fn refresh(
    req: HttpRequest,
    state: State,
    body: web::Json<RefreshBody>,
) -> Result<HttpResponse> {
    state.auth_limiter.check(state.client_ip(req.head()))?;
    let body = body.into_inner();
    let auth = state.auth.clone();
    run(
        &state,
        async move { ok(auth.refresh(&body.refresh).await?) },
    )
    .await
}

/// `POST /api/auth/logout` → 204; the refresh token and its family are revoked, and the
/// sockets that login opened close (4004), on every process.
async fn logout(state: State, body: web::Json<RefreshBody>) -> Result<HttpResponse> {
    let body = body.into_inner();
    let engine = state.engine.clone();
    run(&state, async move {
        engine.logout(&body.refresh).await?;
        no_content()
    })
    .await
}

async fn client_config(state: State, Authenticated(user): Authenticated) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(state.engine.client_config(&user))
}

/// Which page of a room list.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct RoomListParams {
    /// Only names starting with this (folded to lower case); empty: all.
    #[serde(default)]
    q: Option<String>,
    /// Start after this name (the `next` of the previous page); empty: from the first.
    #[serde(default)]
    after: Option<String>,
    /// Rooms per page: 1–200 (larger is served 200, 0 is served 1), default 100.
    #[serde(default)]
    limit: Option<u32>,
}

impl RoomListParams {
    /// The query for `scope`; an empty `q` or `after` is the same as none.
    fn into_query(self, scope: RoomScope) -> Result<RoomListQuery> {
        let name = |field: &str, raw: Option<String>| {
            raw.filter(|v| !v.is_empty())
                .map(|v| {
                    RoomName::parse(&v).map_err(|e| {
                        ApiError::new(ErrorCode::InvalidField, format!("{field}: {e}"))
                    })
                })
                .transpose()
        };
        Ok(RoomListQuery {
            scope,
            prefix: name("q", self.q)?,
            after: name("after", self.after)?,
            limit: self.limit,
        })
    }
}

/// `GET /api/rooms?q=&after=&limit=`: a page of the public rooms, by name →
/// `{rooms, next}`.
async fn list_rooms(
    state: State,
    Authenticated(user): Authenticated,
    params: web::Query<RoomListParams>,
) -> Result<HttpResponse> {
    let query = params.into_inner().into_query(RoomScope::Public)?;
    let rooms = state.engine.rooms();
    run(&state, async move { ok(rooms.list(&user, &query).await?) }).await
}

/// `GET /api/me/rooms?q=&after=&limit=`: a page of the rooms the user belongs to, by name →
/// `{rooms, next}`.
async fn my_rooms(
    state: State,
    Authenticated(user): Authenticated,
    params: web::Query<RoomListParams>,
) -> Result<HttpResponse> {
    let query = params.into_inner().into_query(RoomScope::Member)?;
    let rooms = state.engine.rooms();
    run(&state, async move { ok(rooms.list(&user, &query).await?) }).await
}

/// A new group room.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateRoomBody {
    /// Its name; not starting with `dm.`.
    #[schema(value_type = RoomName)]
    name: String,
    /// `public` (the default) or `private`.
    #[serde(default)]
    kind: Option<RoomKind>,
    /// Its topic line (default empty).
    #[serde(default)]
    #[schema(value_type = Option<Topic>)]
    topic: Option<String>,
}

pub(crate) fn parse_room_name(raw: &str) -> Result<RoomName> {
    RoomName::parse(raw).map_err(|e| ApiError::new(ErrorCode::InvalidRoomName, e.to_string()))
}

fn parse_group_name(raw: &str) -> Result<RoomName> {
    RoomName::parse_group(raw).map_err(|e| ApiError::new(ErrorCode::InvalidRoomName, e.to_string()))
}

fn parse_topic(raw: &str) -> Result<Topic> {
    Topic::parse(raw).map_err(|e| ApiError::new(ErrorCode::InvalidField, e.to_string()))
}

pub(crate) fn parse_user_name(raw: &str) -> Result<UserName> {
    UserName::parse(raw).map_err(|e| ApiError::new(ErrorCode::InvalidField, e.to_string()))
}

/// `POST /api/rooms` `{name, kind?: "public"|"private", topic?}` → 201 with the room.
async fn create_room(
    state: State,
    Authenticated(user): Authenticated,
    body: web::Json<CreateRoomBody>,
) -> Result<HttpResponse> {
    let body = body.into_inner();
    let name = parse_group_name(&body.name)?;
    let kind = body.kind.unwrap_or(RoomKind::Public);
    let topic = parse_topic(body.topic.as_deref().unwrap_or(""))?;
    let rooms = state.engine.rooms();
    run(&state, async move {
        created(rooms.create(&user, name, kind, topic).await?)
    })
    .await
}

/// `GET /api/rooms/{room}`: the room, the user's role, its members and who is online.
async fn get_room(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let room = parse_room_name(&path)?;
    let rooms = state.engine.rooms();
    run(
        &state,
        async move { ok(rooms.details(&user, &room).await?) },
    )
    .await
}

/// What to change in a room (absent: unchanged).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateRoomBody {
    /// A new name (group rooms only).
    #[serde(default)]
    #[schema(value_type = Option<RoomName>)]
    name: Option<String>,
    /// A new topic.
    #[serde(default)]
    #[schema(value_type = Option<Topic>)]
    topic: Option<String>,
    /// `true`: read-only (only the room's owners and staff post); `false`: writable again.
    #[serde(default)]
    read_only: Option<bool>,
    /// `public` or `private` (group rooms only; making a room private ends its guests'
    /// memberships).
    #[serde(default)]
    kind: Option<RoomKind>,
}

/// `PATCH /api/rooms/{room}` `{name?, topic?, read_only?, kind?}` → the room.
async fn update_room(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<String>,
    body: web::Json<UpdateRoomBody>,
) -> Result<HttpResponse> {
    let room = parse_room_name(&path)?;
    let body = body.into_inner();
    let changes = RoomChanges {
        name: body.name.as_deref().map(parse_group_name).transpose()?,
        topic: body.topic.as_deref().map(parse_topic).transpose()?,
        read_only: body.read_only,
        kind: body.kind,
    };
    let rooms = state.engine.rooms();
    run(&state, async move {
        ok(rooms.update(&user, &room, changes).await?)
    })
    .await
}

/// `DELETE /api/rooms/{room}` → 204.
async fn delete_room(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let room = parse_room_name(&path)?;
    let rooms = state.engine.rooms();
    run(&state, async move {
        rooms.delete(&user, &room).await?;
        no_content()
    })
    .await
}

/// Who to add, as what.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AddMemberBody {
    /// The user to add.
    #[schema(value_type = UserName)]
    username: String,
    /// Their role (default `member`).
    #[serde(default)]
    role: Option<Role>,
}

/// `POST /api/rooms/{room}/members` `{username, role?}` → 201 with the new membership, or
/// 200 with an existing member's (its role changed to `role` if it differed).
async fn add_member(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<String>,
    body: web::Json<AddMemberBody>,
) -> Result<HttpResponse> {
    let room = parse_room_name(&path)?;
    let body = body.into_inner();
    let member = parse_user_name(&body.username)?;
    let role = body.role.unwrap_or(Role::Member);
    let rooms = state.engine.rooms();
    run(&state, async move {
        match rooms.add_member(&user, &room, &member, role).await? {
            MemberAdded::Added(m) => created(m),
            MemberAdded::RoleChanged(m) | MemberAdded::Unchanged(m) => ok(m),
        }
    })
    .await
}

/// A member's new role.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SetRoleBody {
    /// The role.
    role: Role,
}

/// `PATCH /api/rooms/{room}/members/{user}` `{role}` → the membership.
async fn set_role(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<(String, String)>,
    body: web::Json<SetRoleBody>,
) -> Result<HttpResponse> {
    let (raw_room, raw_user) = path.into_inner();
    let room = parse_room_name(&raw_room)?;
    let member = parse_user_name(&raw_user)?;
    let role = body.into_inner().role;
    let rooms = state.engine.rooms();
    run(&state, async move {
        ok(rooms.set_role(&user, &room, &member, role).await?)
    })
    .await
}

/// `DELETE /api/rooms/{room}/members/{user}` → 204.
async fn remove_member(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (raw_room, raw_user) = path.into_inner();
    let room = parse_room_name(&raw_room)?;
    let member = parse_user_name(&raw_user)?;
    let rooms = state.engine.rooms();
    run(&state, async move {
        rooms.remove_member(&user, &room, &member).await?;
        no_content()
    })
    .await
}

/// Which page of a room's history.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct HistoryParams {
    /// Messages older than this message id (the default: the newest).
    #[serde(default)]
    before: Option<i64>,
    /// Messages newer than this message id (catching up).
    #[serde(default)]
    after: Option<i64>,
    /// Messages per page: 1–100, default 50.
    #[serde(default)]
    limit: Option<u32>,
}

/// A message id given in the query string.
fn message_id(name: &str, value: Option<i64>) -> Result<Option<MessageId>> {
    match value {
        Some(v) if v <= 0 => Err(ApiError::new(
            ErrorCode::InvalidField,
            format!("{name}: must be a positive message id"),
        )),
        other => Ok(other.map(MessageId)),
    }
}

/// `GET /api/rooms/{room}/messages?before=&after=&limit=` → `{room, messages, has_more}`
/// (oldest first).
async fn messages(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<String>,
    params: web::Query<HistoryParams>,
) -> Result<HttpResponse> {
    let room = parse_room_name(&path)?;
    let params = params.into_inner();
    let query = HistoryQuery {
        before: message_id("before", params.before)?,
        after: message_id("after", params.after)?,
        limit: params.limit,
    };
    let rooms = state.engine.rooms();
    run(&state, async move {
        ok(rooms.history(&user, &room, &query).await?)
    })
    .await
}

/// What to search for.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    /// The words to find (every one, whole words, case-insensitive): 1–200 characters.
    q: String,
    /// Only this room.
    #[serde(default)]
    room: Option<String>,
    /// Only results older than this message id (the previous page's `next_before`).
    #[serde(default)]
    before: Option<i64>,
    /// Results per page: 1–50, default 20.
    #[serde(default)]
    limit: Option<u32>,
}

/// `GET /api/search?q=&room=&before=&limit=` → `{terms, results, has_more, next_before}`.
async fn search(
    state: State,
    Authenticated(user): Authenticated,
    params: web::Query<SearchParams>,
) -> Result<HttpResponse> {
    let params = params.into_inner();
    let request = SearchRequest {
        room: params.room.as_deref().map(parse_room_name).transpose()?,
        before: message_id("before", params.before)?,
        limit: params.limit,
        q: params.q,
    };
    let rooms = state.engine.rooms();
    run(
        &state,
        async move { ok(rooms.search(&user, &request).await?) },
    )
    .await
}

/// Who is online in a room.
#[derive(Serialize, ToSchema)]
struct RoomOnline {
    /// The room.
    room: RoomName,
    /// The user names of those online, across every process.
    online: Vec<UserName>,
}

/// `GET /api/rooms/{room}/online` → `{room, online: [usernames]}` across every node.
async fn online(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let room = parse_room_name(&path)?;
    let rooms = state.engine.rooms();
    run(&state, async move {
        let online = rooms.online(&user, &room).await?;
        ok(RoomOnline { room, online })
    })
    .await
}

/// `POST /api/direct/{username}` → the 1:1 room of the user and `username`, created on first
/// use.
async fn direct(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let other = parse_user_name(&path)?;
    let rooms = state.engine.rooms();
    run(
        &state,
        async move { ok(rooms.direct(&user, &other).await?) },
    )
    .await
}
