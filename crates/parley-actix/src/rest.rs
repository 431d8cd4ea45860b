//! The REST API under `/api`: accounts and tokens, rooms, members, history, presence,
//! direct rooms. Each handler parses its input, calls `parley-auth` or the engine's rooms
//! service ([`parley_core::Rooms`], where every access rule lives) and maps the answer or
//! the error; none decides who may do what.

use crate::conn_limit::address_key;
use crate::endpoint::endpoint;
use crate::error::{ApiError, Result};
use crate::state::{AppState, Authenticated};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use parley_auth::Password;
use parley_core::{HistoryQuery, MemberAdded, RoomChanges, RoomListQuery, RoomScope};
use parley_domain::protocol::ErrorCode;
use parley_domain::{MessageId, Role, RoomKind, RoomName, Topic, UserName};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::future::Future;

type State = web::Data<AppState>;

/// A handler's answer, built on the application runtime (an `HttpResponse` is not `Send`).
struct Reply(StatusCode, Option<Value>);

fn ok(body: impl Serialize) -> Result<Reply> {
    to_reply(StatusCode::OK, body)
}

fn created(body: impl Serialize) -> Result<Reply> {
    to_reply(StatusCode::CREATED, body)
}

fn no_content() -> Result<Reply> {
    Ok(Reply(StatusCode::NO_CONTENT, None))
}

fn to_reply(status: StatusCode, body: impl Serialize) -> Result<Reply> {
    let body = serde_json::to_value(body).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Reply(status, Some(body)))
}

/// Runs a handler's work on the application runtime (see [`AppState::offload`]).
async fn run<Fut>(state: &State, work: Fut) -> Result<HttpResponse>
where
    Fut: Future<Output = Result<Reply>> + Send + 'static,
{
    let Reply(status, body) = state.offload(work).await??;
    Ok(match body {
        Some(body) => HttpResponse::build(status).json(body),
        None => HttpResponse::build(status).finish(),
    })
}

/// Registers the `/api` routes on `cfg`.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(endpoint("/auth/register").post(register).done())
        .service(endpoint("/auth/login").post(login).done())
        .service(endpoint("/auth/refresh").post(refresh).done())
        .service(endpoint("/auth/logout").post(logout).done())
        .service(endpoint("/me").get(me).done())
        .service(endpoint("/me/rooms").get(my_rooms).done())
        .service(endpoint("/rooms").get(list_rooms).post(create_room).done())
        .service(
            endpoint("/rooms/{room}")
                .get(get_room)
                .patch(update_room)
                .delete(delete_room)
                .done(),
        )
        .service(endpoint("/rooms/{room}/members").post(add_member).done())
        .service(
            endpoint("/rooms/{room}/members/{user}")
                .patch(set_role)
                .delete(remove_member)
                .done(),
        )
        .service(endpoint("/rooms/{room}/messages").get(messages).done())
        .service(endpoint("/rooms/{room}/online").get(online).done())
        .service(endpoint("/direct/{username}").post(direct).done());
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    username: String,
    password: String,
    #[serde(default)]
    email: Option<String>,
}

/// `POST /api/auth/register` → 201 with the user.
async fn register(
    req: HttpRequest,
    state: State,
    body: web::Json<RegisterBody>,
) -> Result<HttpResponse> {
    state.auth_limiter.check(&req)?;
    let body = body.into_inner();
    let auth = state.auth.clone();
    run(&state, async move {
        let password = Password::new(body.password);
        created(
            auth.register(&body.username, &password, body.email.as_deref())
                .await?,
        )
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

/// `POST /api/auth/login` → `{access, refresh, user}`.
async fn login(req: HttpRequest, state: State, body: web::Json<LoginBody>) -> Result<HttpResponse> {
    state.auth_limiter.check(&req)?;
    let body = body.into_inner();
    let peer = req.peer_addr().map(|a| address_key(a.ip()));
    state.account_limiter.check(&body.username, peer)?;
    let auth = state.auth.clone();
    let limiter = state.account_limiter.clone();
    run(&state, async move {
        let result = auth
            .login(&body.username, &Password::new(body.password))
            .await;
        match &result {
            Ok(_) => limiter.succeeded(&body.username, peer),
            Err(parley_auth::AuthError::InvalidCredentials) => limiter.failed(&body.username, peer),
            Err(_) => {}
        }
        ok(result?)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh: String,
}

/// `POST /api/auth/refresh` → a new `{access, refresh}`; the presented token is revoked.
async fn refresh(
    req: HttpRequest,
    state: State,
    body: web::Json<RefreshBody>,
) -> Result<HttpResponse> {
    state.auth_limiter.check(&req)?;
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

/// `GET /api/me`.
async fn me(Authenticated(user): Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(user)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomListParams {
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    after: Option<String>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRoomBody {
    name: String,
    #[serde(default)]
    kind: Option<RoomKind>,
    #[serde(default)]
    topic: Option<String>,
}

fn parse_room_name(raw: &str) -> Result<RoomName> {
    RoomName::parse(raw).map_err(|e| ApiError::new(ErrorCode::InvalidRoomName, e.to_string()))
}

fn parse_group_name(raw: &str) -> Result<RoomName> {
    RoomName::parse_group(raw).map_err(|e| ApiError::new(ErrorCode::InvalidRoomName, e.to_string()))
}

fn parse_topic(raw: &str) -> Result<Topic> {
    Topic::parse(raw).map_err(|e| ApiError::new(ErrorCode::InvalidField, e.to_string()))
}

fn parse_user_name(raw: &str) -> Result<UserName> {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateRoomBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    topic: Option<String>,
}

/// `PATCH /api/rooms/{room}` `{name?, topic?}` → the room.
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMemberBody {
    username: String,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetRoleBody {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryParams {
    #[serde(default)]
    before: Option<i64>,
    #[serde(default)]
    after: Option<i64>,
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

#[derive(Serialize)]
struct OnlineBody {
    room: RoomName,
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
        ok(OnlineBody { room, online })
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
