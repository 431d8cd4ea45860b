//! The REST API under `/api`: accounts and tokens, rooms, members, history, presence,
//! direct rooms. Every handler authorizes with the store's records and answers JSON.

use crate::error::{ApiError, Result};
use crate::state::{AppState, Authenticated};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use parley_auth::Password;
use parley_domain::{MessageId, Role, Room, RoomKind, RoomName, Topic, User, UserName};
use parley_store::{HistoryQuery, NewRoom};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
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
    cfg.route("/auth/register", web::post().to(register))
        .route("/auth/login", web::post().to(login))
        .route("/auth/refresh", web::post().to(refresh))
        .route("/auth/logout", web::post().to(logout))
        .route("/me", web::get().to(me))
        .route("/rooms", web::get().to(list_rooms))
        .route("/rooms", web::post().to(create_room))
        .route("/rooms/{room}", web::get().to(get_room))
        .route("/rooms/{room}", web::patch().to(update_room))
        .route("/rooms/{room}", web::delete().to(delete_room))
        .route("/rooms/{room}/members", web::post().to(add_member))
        .route(
            "/rooms/{room}/members/{user}",
            web::delete().to(remove_member),
        )
        .route("/rooms/{room}/messages", web::get().to(messages))
        .route("/rooms/{room}/online", web::get().to(online))
        .route("/direct/{username}", web::post().to(direct));
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
    state.account_limiter.check(&body.username)?;
    let auth = state.auth.clone();
    let limiter = state.account_limiter.clone();
    run(&state, async move {
        let result = auth
            .login(&body.username, &Password::new(body.password))
            .await;
        if matches!(result, Err(parley_auth::AuthError::InvalidCredentials)) {
            limiter.failed(&body.username);
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

/// `POST /api/auth/logout` → 204; the refresh token and its family are revoked.
async fn logout(state: State, body: web::Json<RefreshBody>) -> Result<HttpResponse> {
    let body = body.into_inner();
    let auth = state.auth.clone();
    run(&state, async move {
        auth.logout(&body.refresh).await?;
        no_content()
    })
    .await
}

/// `GET /api/me`.
async fn me(Authenticated(user): Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(user)
}

/// `GET /api/rooms`: rooms visible to the user with their role and unread counts.
async fn list_rooms(state: State, Authenticated(user): Authenticated) -> Result<HttpResponse> {
    let st = state.clone();
    run(&state, async move {
        ok(st.engine.store().rooms_for_user(user.id).await?)
    })
    .await
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
    RoomName::parse(raw).map_err(|e| ApiError::bad_request("invalid_room_name", e.to_string()))
}

fn parse_group_name(raw: &str) -> Result<RoomName> {
    RoomName::parse_group(raw)
        .map_err(|e| ApiError::bad_request("invalid_room_name", e.to_string()))
}

fn parse_topic(raw: &str) -> Result<Topic> {
    Topic::parse(raw).map_err(|e| ApiError::bad_request("invalid_field", e.to_string()))
}

fn parse_user_name(raw: &str) -> Result<UserName> {
    UserName::parse(raw).map_err(|e| ApiError::bad_request("invalid_field", e.to_string()))
}

/// `POST /api/rooms` `{name, kind?: "public"|"private", topic?}` → 201 with the room.
async fn create_room(
    state: State,
    Authenticated(user): Authenticated,
    body: web::Json<CreateRoomBody>,
) -> Result<HttpResponse> {
    let body = body.into_inner();
    let st = state.clone();
    run(&state, async move {
        let name = parse_group_name(&body.name)?;
        let kind = body.kind.unwrap_or(RoomKind::Public);
        if kind == RoomKind::Direct {
            return Err(ApiError::bad_request(
                "invalid_field",
                "kind: direct rooms are made with POST /api/direct/{username}",
            ));
        }
        let topic = parse_topic(body.topic.as_deref().unwrap_or(""))?;
        let room = st
            .engine
            .store()
            .create_room(&NewRoom {
                name,
                kind,
                creator: user.id,
                topic,
            })
            .await?;
        created(room)
    })
    .await
}

/// The room named in the path, if `user` may see it: public rooms to everyone, others to
/// their members and to staff. Invisible rooms are `not_member` (403) rather than 404 so a
/// client can tell a typo from a closed door; their content is never shown.
async fn visible_room(state: &AppState, user: &User, raw: &str) -> Result<(Room, Option<Role>)> {
    let store = state.engine.store();
    let room = store.room_by_name(&parse_room_name(raw)?).await?;
    let role = store.membership(room.id, user.id).await?.map(|m| m.role);
    if room.kind == RoomKind::Public || role.is_some() || user.is_staff {
        Ok((room, role))
    } else {
        Err(ApiError::forbidden(
            "not_member",
            "you are not a member of this room",
        ))
    }
}

/// Only the owner of a room or staff may manage it.
fn require_manager(user: &User, role: Option<Role>) -> Result<()> {
    if user.is_staff || role == Some(Role::Owner) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "forbidden",
            "only the room's owner or staff may do that",
        ))
    }
}

/// Tells every member's connections to leave `room` (after it was renamed or deleted).
async fn kick_all(state: &AppState, members: &[parley_domain::Membership], room: &RoomName) {
    for m in members {
        if let Err(e) = state.engine.kick(m.user_id, room).await {
            tracing::warn!(error = %e, %room, "could not tell a member's connections to leave");
        }
    }
}

/// `GET /api/rooms/{room}`: the room, the user's role, its members and who is online.
async fn get_room(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let raw = path.into_inner();
    let st = state.clone();
    run(&state, async move {
        let (room, role) = visible_room(&st, &user, &raw).await?;
        let store = st.engine.store();
        let mut members = Vec::new();
        for m in store.members(room.id).await? {
            let username = store.user_by_id(m.user_id).await.ok().map(|u| u.username);
            members.push(json!({
                "user_id": m.user_id,
                "username": username,
                "role": m.role,
                "joined_at": m.joined_at,
            }));
        }
        let online = st.engine.online(&room.name);
        let mut body =
            serde_json::to_value(&room).map_err(|e| ApiError::Internal(e.to_string()))?;
        if let Some(obj) = body.as_object_mut() {
            obj.insert("role".into(), json!(role));
            obj.insert("members".into(), json!(members));
            obj.insert("online".into(), json!(online));
        }
        ok(body)
    })
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

/// `PATCH /api/rooms/{room}` `{name?, topic?}` (owner or staff) → the room. A rename makes
/// joined connections leave the old name (they receive `left`); they join the new one.
async fn update_room(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<String>,
    body: web::Json<UpdateRoomBody>,
) -> Result<HttpResponse> {
    let raw = path.into_inner();
    let body = body.into_inner();
    let st = state.clone();
    run(&state, async move {
        let (mut room, role) = visible_room(&st, &user, &raw).await?;
        require_manager(&user, role)?;
        let store = st.engine.store();
        let topic = body.topic.as_deref().map(parse_topic).transpose()?;
        let name = body.name.as_deref().map(parse_group_name).transpose()?;
        if name.is_some() && room.kind == RoomKind::Direct {
            return Err(ApiError::bad_request(
                "invalid_field",
                "direct rooms cannot be renamed",
            ));
        }
        if let Some(topic) = topic {
            room = store.set_topic(room.id, &topic).await?;
        }
        if let Some(name) = name
            && name != room.name
        {
            let old = room.name.clone();
            room = store.rename_room(room.id, &name).await?;
            let members = store.members(room.id).await?;
            kick_all(&st, &members, &old).await;
        }
        ok(room)
    })
    .await
}

/// `DELETE /api/rooms/{room}` (owner or staff) → 204; joined connections receive `left`.
async fn delete_room(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let raw = path.into_inner();
    let st = state.clone();
    run(&state, async move {
        let (room, role) = visible_room(&st, &user, &raw).await?;
        require_manager(&user, role)?;
        let store = st.engine.store();
        let members = store.members(room.id).await?;
        store.delete_room(room.id).await?;
        kick_all(&st, &members, &room.name).await;
        tracing::info!(room = %room.name, by = %user.username, "room deleted");
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

/// `POST /api/rooms/{room}/members` `{username, role?}` (owner or staff) → 201 with the
/// membership.
async fn add_member(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<String>,
    body: web::Json<AddMemberBody>,
) -> Result<HttpResponse> {
    let raw = path.into_inner();
    let body = body.into_inner();
    let st = state.clone();
    run(&state, async move {
        let (room, role) = visible_room(&st, &user, &raw).await?;
        require_manager(&user, role)?;
        let store = st.engine.store();
        let member = store
            .user_by_name(&parse_user_name(&body.username)?)
            .await?;
        let membership = store
            .add_member(room.id, member.id, body.role.unwrap_or(Role::Member))
            .await?;
        created(membership)
    })
    .await
}

/// `DELETE /api/rooms/{room}/members/{user}` (owner or staff, or the member themself) →
/// 204; the member's connections leave the room.
async fn remove_member(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (raw_room, raw_user) = path.into_inner();
    let st = state.clone();
    run(&state, async move {
        let (room, role) = visible_room(&st, &user, &raw_room).await?;
        let store = st.engine.store();
        let member = store.user_by_name(&parse_user_name(&raw_user)?).await?;
        if member.id != user.id {
            require_manager(&user, role)?;
        }
        if room.kind == RoomKind::Direct {
            return Err(ApiError::bad_request(
                "invalid_field",
                "a direct room's members are fixed",
            ));
        }
        store.remove_member(room.id, member.id).await?;
        if let Err(e) = st.engine.kick(member.id, &room.name).await {
            tracing::warn!(error = %e, room = %room.name, "could not tell the member's connections to leave");
        }
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

/// `GET /api/rooms/{room}/messages?before=&after=&limit=` → `{room, messages, has_more}`
/// (oldest first). Public rooms and the user's rooms only.
async fn messages(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<String>,
    params: web::Query<HistoryParams>,
) -> Result<HttpResponse> {
    let raw = path.into_inner();
    let params = params.into_inner();
    let st = state.clone();
    run(&state, async move {
        for (name, value) in [("before", params.before), ("after", params.after)] {
            if value.is_some_and(|v| v <= 0) {
                return Err(ApiError::bad_request(
                    "invalid_field",
                    format!("{name}: must be a positive message id"),
                ));
            }
        }
        let store = st.engine.store();
        let room = store.room_by_name(&parse_room_name(&raw)?).await?;
        // Staff manage rooms but do not read private conversations.
        if room.kind != RoomKind::Public && !store.is_member(room.id, user.id).await? {
            return Err(ApiError::forbidden(
                "not_member",
                "you are not a member of this room",
            ));
        }
        let page = store
            .history(
                room.id,
                &HistoryQuery {
                    before: params.before.map(MessageId),
                    after: params.after.map(MessageId),
                    limit: params.limit,
                },
            )
            .await?;
        ok(json!({
            "room": room.name,
            "messages": page.messages,
            "has_more": page.has_more,
        }))
    })
    .await
}

/// `GET /api/rooms/{room}/online` → `{room, online: [usernames]}` across every node.
async fn online(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let raw = path.into_inner();
    let st = state.clone();
    run(&state, async move {
        let (room, _) = visible_room(&st, &user, &raw).await?;
        let online = st.engine.online(&room.name);
        ok(json!({"room": room.name, "online": online}))
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
    let raw = path.into_inner();
    let st = state.clone();
    run(&state, async move {
        let store = st.engine.store();
        let other = store.user_by_name(&parse_user_name(&raw)?).await?;
        if other.id == user.id {
            return Err(ApiError::bad_request(
                "invalid_field",
                "a direct room needs another user",
            ));
        }
        ok(store.direct_room(user.id, other.id).await?)
    })
    .await
}
