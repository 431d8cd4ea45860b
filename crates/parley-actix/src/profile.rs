//! The routes of a user's own account under `/api/me` (issue 15): read it with its linked
//! sign-ins, edit the profile, change the password, delete it. Each handler parses, calls
//! the engine ([`parley_core::Engine::update_profile`], ...) where the rules are, and maps
//! the answer.

use crate::endpoint::Routes;
use crate::error::Result;
use crate::openapi::Tag;
use crate::rest::{State, api, no_content, ok, run};
use crate::state::{Authenticated, AuthenticatedClaims};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use parley_auth::{LoginResponse, Password};
use parley_core::OwnAccount;
use parley_domain::User;
use parley_domain::protocol::ErrorCode;
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

/// The `/api/me` routes, each with its description.
pub(crate) fn routes(r: &mut Routes<'_>) {
    use ErrorCode::*;
    r.at("/me")
        .get(
            me,
            api(Tag::Accounts, "me", "The authenticated user")
                .describe(
                    "The account's fields (as in the login answer, with `display_name`) and \
                     `identities`: the external sign-ins linked to it (`issuer`, \
                     `linked_at`), oldest first.",
                )
                .authenticated()
                .reply::<OwnAccount>(StatusCode::OK, "The account of the access token."),
        )
        .patch(
            update_me,
            api(
                Tag::Accounts,
                "update_me",
                "Change one's display name or e-mail",
            )
            .describe(
                "Any signed-in account (guests: `invalid_field`). A field left out stays; \
                     `null` or `\"\"` clears it. `display_name`: at most 64 characters after \
                     trimming, no control characters (`invalid_display_name`); the user's \
                     open sockets send it in their new messages at once, on every process. \
                     `email`: checked for shape (`invalid_field`); an address another account \
                     uses (case-insensitively) is refused with `email_taken` (409).",
            )
            .authenticated()
            .body::<ProfileBody>()
            .reply::<User>(StatusCode::OK, "The updated account.")
            .refuses(&[InvalidField, InvalidDisplayName, EmailTaken]),
        )
        .delete(
            delete_me,
            api(Tag::Accounts, "delete_me", "Delete one's own account")
                .describe(
                    "An account with a password sends it (`invalid_credentials` otherwise); \
                     one without (made by an external sign-in) sends `{}` with an access \
                     token issued in the last 5 minutes (`forbidden` otherwise: sign in \
                     again). The account is renamed `deleted.{id}` (its messages stay, by \
                     that name), leaves every room, loses its e-mail, display name, linked \
                     sign-ins and password; every token of it is refused at once and its \
                     sockets close with 4005 on every process.",
                )
                .authenticated()
                .body::<DeleteBody>()
                .reply_empty(StatusCode::NO_CONTENT, "Deleted.")
                .refuses(&[InvalidCredentials, Forbidden, InvalidField]),
        )
        .done();
    r.at("/me/password")
        .post(
            change_password,
            api(Tag::Accounts, "change_password", "Change one's password")
                .describe(
                    "Needs the current password (`invalid_credentials`; also for an account \
                     without one); the new one keeps the rules (`weak_password`). Every \
                     token of the account issued before is refused from now on, and every \
                     socket of it closes (4004) except those of the caller's own login, \
                     which goes on with the token pair in the answer (same login: its \
                     sockets renew with the new access token).",
                )
                .authenticated()
                .body::<OwnPasswordBody>()
                .reply::<LoginResponse>(StatusCode::OK, "A fresh token pair and the account.")
                .refuses(&[InvalidCredentials, WeakPassword]),
        )
        .done();
}

/// `Some(value)` for a field that is present, `null` included: tells "leave it" (absent)
/// from "clear it" (`null`).
fn present<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A profile change; a field left out stays as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ProfileBody {
    /// The name shown beside the user name; `null` or `""` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    display_name: Option<Option<String>>,
    /// The contact address; `null` or `""` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    email: Option<Option<String>>,
}

/// A password change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct OwnPasswordBody {
    /// The password now.
    #[schema(format = Password)]
    current_password: String,
    /// The new one: 8 characters to 72 bytes, not the user name.
    #[schema(format = Password, min_length = 8)]
    new_password: String,
}

/// The proof for deleting one's account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DeleteBody {
    /// The account's password (absent for an account without one).
    #[serde(default)]
    #[schema(format = Password)]
    password: Option<String>,
}

/// `GET /api/me`.
async fn me(state: State, Authenticated(user): Authenticated) -> Result<HttpResponse> {
    let engine = state.engine.clone();
    run(&state, async move { ok(engine.own_account(user).await?) }).await
}

/// `PATCH /api/me` → 200 with the account.
async fn update_me(
    state: State,
    Authenticated(user): Authenticated,
    body: web::Json<ProfileBody>,
) -> Result<HttpResponse> {
    let body = body.into_inner();
    let engine = state.engine.clone();
    run(&state, async move {
        let display = body.display_name.as_ref().map(Option::as_deref);
        let email = body.email.as_ref().map(Option::as_deref);
        ok(engine.update_profile(&user, display, email).await?)
    })
    .await
}

/// `POST /api/me/password` → 200 with a fresh token pair.
async fn change_password(
    state: State,
    AuthenticatedClaims(user, claims): AuthenticatedClaims,
    body: web::Json<OwnPasswordBody>,
) -> Result<HttpResponse> {
    let body = body.into_inner();
    let engine = state.engine.clone();
    run(&state, async move {
        let current = Password::new(body.current_password);
        let new = Password::new(body.new_password);
        ok(engine
            .change_password(&user, &claims, &current, &new)
            .await?)
    })
    .await
}

/// `DELETE /api/me` → 204.
async fn delete_me(
    state: State,
    AuthenticatedClaims(user, claims): AuthenticatedClaims,
    body: web::Json<DeleteBody>,
) -> Result<HttpResponse> {
    let body = body.into_inner();
    let engine = state.engine.clone();
    run(&state, async move {
        let password = body.password.map(Password::new);
        engine
            .delete_own_account(&user, &claims, password.as_ref())
            .await?;
        no_content()
    })
    .await
}
