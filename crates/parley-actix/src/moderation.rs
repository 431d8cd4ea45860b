//! The room moderation routes under `/api/rooms/{room}`: bans, mutes and deleting a message
//! (read-only rooms are a field of `PATCH /api/rooms/{room}`). Each handler parses, calls the engine's rooms
//! service ([`parley_core::Rooms::ban`], ...), where the rules are, and maps the answer.

use crate::endpoint::Routes;
use crate::error::{ApiError, Result};
use crate::openapi::Tag;
use crate::rest::{State, api, no_content, ok, parse_room_name, parse_user_name, run};
use crate::state::Authenticated;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use parley_domain::protocol::ErrorCode;
use parley_domain::{MessageId, Mute, Reason, RoomBan, RoomMute, RoomName, Timestamp, UserName};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

/// The moderation routes, each with its description.
pub(crate) fn routes(r: &mut Routes<'_>) {
    use ErrorCode::*;
    let who = "The room's owners and staff (others: `forbidden`, or `not_member` if they may \
               not see the room). Group rooms only. Recorded in the audit log.";
    r.at("/rooms/{room}/bans")
        .get(
            list_bans,
            api(Tag::Rooms, "list_bans", "The users banned from a room")
                .describe("The room's owners and staff. Newest ban first.")
                .authenticated()
                .reply::<RoomBans>(StatusCode::OK, "The bans, newest first.")
                .refuses(&[NotFound, Forbidden, NotMember]),
        )
        .done();
    r.at("/rooms/{room}/bans/{user}")
        .post(
            ban,
            api(Tag::Rooms, "ban", "Ban a user from a room")
                .describe(&format!(
                    "{who} The user stops being a member; their sockets leave the room at \
                     once, on every process (`left`); until unbanned they may not join, read, \
                     post in or be added to it (`banned`), and the public room list leaves \
                     it out for them. A non-member may be banned too. An owner must be made \
                     a member first (`conflict`); nobody bans themself. Banning again \
                     keeps the first ban."
                ))
                .authenticated()
                .body::<BanBody>()
                .reply_empty(StatusCode::NO_CONTENT, "Banned.")
                .refuses(&[NotFound, Forbidden, NotMember, InvalidField, Conflict]),
        )
        .delete(
            unban,
            api(Tag::Rooms, "unban", "Lift a user's ban from a room")
                .describe(&format!(
                    "{who} They may join again (they are not made a member). `not_found` if \
                     they were not banned."
                ))
                .authenticated()
                .reply_empty(StatusCode::NO_CONTENT, "Unbanned.")
                .refuses(&[NotFound, Forbidden, NotMember, InvalidField]),
        )
        .done();
    r.at("/rooms/{room}/messages/{id}")
        .delete(
            delete_message,
            api(Tag::Rooms, "delete_message", "Delete a message")
                .describe(
                    "Its author (in a room they may read), or the room's owners and staff: \
                     anyone's message, recorded in the audit log. Others: `forbidden` \
                     (`not_member` or `banned` if they may not see the room). The same rule \
                     as the socket's `delete`: it leaves a tombstone, and the room's sockets \
                     receive `deleted` at once, on every process. A message not in this room: \
                     `not_found`; deleted already: `conflict`.",
                )
                .authenticated()
                .reply_empty(StatusCode::NO_CONTENT, "Deleted.")
                .refuses(&[
                    NotFound,
                    Forbidden,
                    NotMember,
                    Banned,
                    Conflict,
                    InvalidField,
                ]),
        )
        .done();
    r.at("/rooms/{room}/mutes")
        .get(
            list_mutes,
            api(Tag::Rooms, "list_mutes", "The users muted in a room")
                .describe("The room's owners and staff. Mutes that have ended are left out.")
                .authenticated()
                .reply::<RoomMutes>(StatusCode::OK, "The mutes, newest first.")
                .refuses(&[NotFound, Forbidden, NotMember]),
        )
        .done();
    r.at("/rooms/{room}/mutes/{user}")
        .post(
            mute,
            api(Tag::Rooms, "mute", "Mute a user in a room")
                .describe(&format!(
                    "{who} For `seconds` (1 to 31536000, a year) or, without it, until \
                     unmuted. The user reads as before but their `send` and `edit` there \
                     answer `muted` (and their `typing` is dropped), at once on every \
                     process. Replaces an earlier mute. An owner must be made a member first \
                     (`conflict`); nobody mutes themself."
                ))
                .authenticated()
                .body::<MuteBody>()
                .reply::<MuteReply>(
                    StatusCode::OK,
                    "The mute: until when (`null`: until lifted).",
                )
                .refuses(&[NotFound, Forbidden, NotMember, InvalidField, Conflict]),
        )
        .delete(
            unmute,
            api(Tag::Rooms, "unmute", "Lift a user's mute in a room")
                .describe(&format!(
                    "{who} `not_found` if they were not muted (or the mute had ended)."
                ))
                .authenticated()
                .reply_empty(StatusCode::NO_CONTENT, "Unmuted.")
                .refuses(&[NotFound, Forbidden, NotMember, InvalidField]),
        )
        .done();
}

/// Why a user is banned.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BanBody {
    /// Why (1–500 characters, kept in the ban and the audit log).
    #[serde(default)]
    #[schema(value_type = Option<Reason>)]
    reason: Option<String>,
}

/// How long and why a user is muted.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MuteBody {
    /// How long, in seconds (1 to 31536000); absent: until unmuted.
    #[serde(default)]
    seconds: Option<u64>,
    /// Why (1–500 characters, kept in the mute and the audit log).
    #[serde(default)]
    #[schema(value_type = Option<Reason>)]
    reason: Option<String>,
}

/// The users banned from a room.
#[derive(Serialize, ToSchema)]
struct RoomBans {
    /// The room.
    room: RoomName,
    /// The bans, newest first.
    bans: Vec<RoomBan>,
}

/// The users muted in a room.
#[derive(Serialize, ToSchema)]
struct RoomMutes {
    /// The room.
    room: RoomName,
    /// The mutes that hold now, newest first.
    mutes: Vec<RoomMute>,
}

/// A mute as set.
#[derive(Serialize, ToSchema)]
struct MuteReply {
    /// The room.
    room: RoomName,
    /// The muted user.
    user: UserName,
    /// When it ends by itself (milliseconds since the epoch); `null`: when lifted.
    until: Option<Timestamp>,
}

fn parse_reason(raw: Option<&str>) -> Result<Option<Reason>> {
    raw.map(|r| {
        Reason::parse(r).map_err(|e| ApiError::new(ErrorCode::InvalidField, format!("reason: {e}")))
    })
    .transpose()
}

fn room_and_user(path: (String, String)) -> Result<(RoomName, UserName)> {
    Ok((parse_room_name(&path.0)?, parse_user_name(&path.1)?))
}

/// `GET /api/rooms/{room}/bans` → `{room, bans: [{user_id, username, reason, banned_by,
/// created_at}]}`.
async fn list_bans(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let room = parse_room_name(&path)?;
    let rooms = state.engine.rooms();
    run(&state, async move {
        let bans = rooms.bans(&user, &room).await?;
        ok(RoomBans { room, bans })
    })
    .await
}

/// `POST /api/rooms/{room}/bans/{user}` `{reason?}` → 204.
async fn ban(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<(String, String)>,
    body: web::Json<BanBody>,
) -> Result<HttpResponse> {
    let (room, target) = room_and_user(path.into_inner())?;
    let reason = parse_reason(body.reason.as_deref())?;
    let rooms = state.engine.rooms();
    run(&state, async move {
        rooms.ban(&user, &room, &target, reason.as_ref()).await?;
        no_content()
    })
    .await
}

/// `DELETE /api/rooms/{room}/bans/{user}` → 204.
async fn unban(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (room, target) = room_and_user(path.into_inner())?;
    let rooms = state.engine.rooms();
    run(&state, async move {
        rooms.unban(&user, &room, &target).await?;
        no_content()
    })
    .await
}

/// `GET /api/rooms/{room}/mutes` → `{room, mutes: [{user_id, username, until, reason,
/// muted_by, created_at}]}`.
async fn list_mutes(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let room = parse_room_name(&path)?;
    let rooms = state.engine.rooms();
    run(&state, async move {
        let mutes = rooms.mutes(&user, &room).await?;
        ok(RoomMutes { room, mutes })
    })
    .await
}

/// `POST /api/rooms/{room}/mutes/{user}` `{seconds?, reason?}` → `{room, user, until}`.
async fn mute(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<(String, String)>,
    body: web::Json<MuteBody>,
) -> Result<HttpResponse> {
    let (room, target) = room_and_user(path.into_inner())?;
    let body = body.into_inner();
    let reason = parse_reason(body.reason.as_deref())?;
    let duration = body.seconds.map(Duration::from_secs);
    let rooms = state.engine.rooms();
    run(&state, async move {
        let Mute { until } = rooms
            .mute(&user, &room, &target, duration, reason.as_ref())
            .await?;
        ok(MuteReply {
            room,
            user: target,
            until,
        })
    })
    .await
}

/// `DELETE /api/rooms/{room}/mutes/{user}` → 204.
async fn unmute(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (room, target) = room_and_user(path.into_inner())?;
    let rooms = state.engine.rooms();
    run(&state, async move {
        rooms.unmute(&user, &room, &target).await?;
        no_content()
    })
    .await
}

/// `DELETE /api/rooms/{room}/messages/{id}` → 204.
async fn delete_message(
    state: State,
    Authenticated(user): Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let (room, id) = path.into_inner();
    let room = parse_room_name(&room)?;
    let id = match id.parse::<i64>() {
        Ok(v) if v > 0 => MessageId(v),
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                "id: must be a positive message id",
            ));
        }
    };
    let rooms = state.engine.rooms();
    run(&state, async move {
        rooms.delete_message(&user, &room, id).await?;
        no_content()
    })
    .await
}
