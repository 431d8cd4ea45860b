//! OpenID Connect sign-in routes under `/api/auth/oidc` (the `oidc` feature): the provider
//! list, the browser flow (start, callback, one-time code exchange) and the ID-token sign-in
//! of native apps. Each handler parses, calls `parley-auth` ([`parley_auth::OidcProviders`],
//! [`parley_auth::Auth`]) and maps the answer; the rules (what a token must carry, which
//! account it signs in, a code used once) live there.

use crate::endpoint::Routes;
use crate::error::{ApiError, Result};
use crate::openapi::Tag;
use crate::rest::{api, ok, run};
use crate::state::AppState;
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use parley_auth::{LoginResponse, OidcFlow, OidcProviders, ProviderInfo};
use parley_domain::protocol::ErrorCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

type State = web::Data<AppState>;

/// The cookie holding a browser sign-in's signed state, between start and callback.
const FLOW_COOKIE: &str = "parley_oidc";

/// The routes, each with its description.
pub(crate) fn routes(r: &mut Routes<'_>) {
    use ErrorCode::*;
    use Tag::Accounts;
    r.at("/auth/oidc")
        .get(
            providers,
            api(
                Accounts,
                "oidc_providers",
                "The OpenID Connect sign-in providers",
            )
            .describe(
                "The configured providers (`oidc_providers`), for one \"Sign in with …\" \
                     button each; an empty list when there are none.",
            )
            .reply::<ProviderList>(StatusCode::OK, "The providers."),
        )
        .done();
    r.at("/auth/oidc/{provider}")
        .post(
            id_token,
            api(
                Accounts,
                "oidc_id_token",
                "Sign in with an ID token a native app holds",
            )
            .describe(
                "The app signed in with the provider itself and posts the ID token \
                 (`id_token`, or `auth_token` as those apps name it). Verified against the \
                 provider's keys (fetched and cached), issuer, audience (`client_id` or one \
                 of `audiences`), expiry and algorithm; the account linked to the provider's \
                 subject is signed in, created on first sign-in. Answered like `login`. \
                 Limited per client address (`auth_rate`, `auth_burst`).",
            )
            .body::<IdTokenBody>()
            .reply::<LoginResponse>(StatusCode::OK, "The tokens and the account.")
            .refuses(&[
                NotFound,
                TokenInvalid,
                TokenExpired,
                ProviderUnavailable,
                RateLimited,
            ]),
        )
        .done();
    r.at("/auth/oidc/{provider}/start")
        .get(
            start,
            api(
                Accounts,
                "oidc_start",
                "Start a browser sign-in: redirect to the provider",
            )
            .describe(
                "Answers 302 to the provider's authorization endpoint (authorization code \
                 with PKCE S256, `state` and `nonce`) and sets a signed, HttpOnly cookie \
                 holding them for 10 minutes (nothing is kept in server memory, so the \
                 callback may reach any server process).",
            )
            .reply_empty(StatusCode::FOUND, "To the provider's sign-in page.")
            .refuses(&[NotFound, ProviderUnavailable, RateLimited]),
        )
        .done();
    r.at("/auth/oidc/{provider}/callback")
        .get(
            callback,
            api(
                Accounts,
                "oidc_callback",
                "Where the provider sends the browser back",
            )
            .query::<CallbackParams>()
            .describe(
                "Checks `state` against the cookie (a sign-in completes once), exchanges \
                 `code` at the provider's token endpoint, verifies the ID token (its \
                 `nonce` included), finds or creates the account, then answers 303 to the \
                 web client with a one-time login code in the URL fragment \
                 (`/#oidc_provider={provider}&oidc_code=...`, never sent to a server); the \
                 page trades it at `POST /api/auth/oidc/{provider}/exchange`. A failure \
                 answers 303 to `/#oidc_error={code}` (an error code of this API).",
            )
            .reply_empty(StatusCode::SEE_OTHER, "Back to the web client."),
        )
        .done();
    r.at("/auth/oidc/{provider}/exchange")
        .post(
            exchange,
            api(
                Accounts,
                "oidc_exchange",
                "Trade a one-time login code for tokens",
            )
            .describe(
                "The code the callback handed the web client: usable once, for 60 seconds, \
                 on any server process. Answered like `login`.",
            )
            .body::<CodeBody>()
            .reply::<LoginResponse>(StatusCode::OK, "The tokens and the account.")
            .refuses(&[
                NotFound,
                TokenInvalid,
                TokenExpired,
                TokenRevoked,
                RateLimited,
            ]),
        )
        .done();
}

/// The sign-in providers.
#[derive(Serialize, ToSchema)]
struct ProviderList {
    /// In configuration order.
    providers: Vec<ProviderInfo>,
}

/// An ID token from the provider.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct IdTokenBody {
    /// The provider's ID token (a JWT). Also accepted under the name `auth_token`.
    #[serde(alias = "auth_token")]
    id_token: String,
}

/// A one-time login code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    /// The `oidc_code` of the callback's redirect.
    code: String,
}

/// What the provider sends back.
#[derive(Deserialize, IntoParams)]
struct CallbackParams {
    /// The authorization code.
    #[serde(default)]
    code: Option<String>,
    /// The `state` of the start.
    #[serde(default)]
    state: Option<String>,
    /// Set by the provider when the sign-in failed or was cancelled.
    #[serde(default)]
    error: Option<String>,
}

/// The providers, or a 404 naming the provider when none are configured.
fn providers_of(state: &State) -> Result<OidcProviders> {
    state
        .oidc
        .clone()
        .ok_or_else(|| ApiError::not_found("no sign-in providers are configured"))
}

/// `GET /api/auth/oidc` → `{providers: [{name, display_name}]}`.
async fn providers(state: State) -> HttpResponse {
    let providers = state
        .oidc
        .as_ref()
        .map(OidcProviders::list)
        .unwrap_or_default();
    HttpResponse::Ok().json(ProviderList { providers })
}

/// `POST /api/auth/oidc/{provider}` → `{access, refresh, user}`.
async fn id_token(
    req: HttpRequest,
    state: State,
    path: web::Path<String>,
    body: web::Json<IdTokenBody>,
) -> Result<HttpResponse> {
    state.auth_limiter.check(state.client_ip(req.head()))?;
    let providers = providers_of(&state)?;
    let name = path.into_inner();
    let token = body.into_inner().id_token;
    let auth = state.auth.clone();
    run(&state, async move {
        ok(auth.login_oidc_token(&providers, &name, &token).await?)
    })
    .await
}

/// The callback URL of provider `name`: its `redirect_uri`, else this server's own.
fn redirect_uri(req: &HttpRequest, providers: &OidcProviders, name: &str) -> Result<String> {
    let config = providers.config(name).map_err(ApiError::from)?;
    Ok(match &config.redirect_uri {
        Some(uri) => uri.clone(),
        None => {
            // The scheme by the one rule of `client.rs` (forwarded headers only from a
            // trusted proxy): it also decides the flow cookie's `Secure` flag.
            let https = req
                .app_data::<State>()
                .is_some_and(|s| s.is_https(req.head(), req.app_config().secure()));
            let info = req.connection_info();
            format!(
                "{}://{}/api/auth/oidc/{name}/callback",
                if https { "https" } else { "http" },
                info.host()
            )
        }
    })
}

/// `GET /api/auth/oidc/{provider}/start` → 302 to the provider, with the flow cookie.
async fn start(req: HttpRequest, state: State, path: web::Path<String>) -> Result<HttpResponse> {
    state.auth_limiter.check(state.client_ip(req.head()))?;
    let providers = providers_of(&state)?;
    let name = path.into_inner();
    let redirect = redirect_uri(&req, &providers, &name)?;
    let flow = OidcFlow::new(&name, &redirect);
    let signed = state.auth.sign_oidc_flow(&flow)?;
    let (url, secure) = {
        let flow = flow.clone();
        let name = name.clone();
        let secure = redirect.starts_with("https://");
        let url = state
            .offload(async move { providers.authorization_url(&name, &redirect, &flow).await })
            .await??;
        (url, secure)
    };
    let cookie = Cookie::build(FLOW_COOKIE, signed)
        .path(format!("/api/auth/oidc/{name}"))
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::seconds(parley_auth::FLOW_TTL_SECS))
        .finish();
    Ok(HttpResponse::Found()
        .insert_header((header::LOCATION, url))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .cookie(cookie)
        .finish())
}

/// `GET /api/auth/oidc/{provider}/callback` → 303 to the web client with a one-time code
/// (or an error code) in the fragment; the flow cookie is cleared either way.
async fn callback(
    req: HttpRequest,
    state: State,
    path: web::Path<String>,
    params: web::Query<CallbackParams>,
) -> HttpResponse {
    let name = path.into_inner();
    let params = params.into_inner();
    let cookie = req.cookie(FLOW_COOKIE).map(|c| c.value().to_owned());
    let outcome = complete(&state, &name, params, cookie).await;
    let location = match outcome {
        Ok(code) => format!("/#oidc_provider={}&oidc_code={code}", percent_encode(&name)),
        Err(e) => {
            tracing::info!(provider = %name, error = %e, "OIDC sign-in failed");
            format!("/#oidc_error={}", e.code().as_str())
        }
    };
    let mut gone = Cookie::build(FLOW_COOKIE, "")
        .path(format!("/api/auth/oidc/{name}"))
        .http_only(true)
        .finish();
    gone.make_removal();
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // The page must not leak the code's URL to another site.
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .cookie(gone)
        .finish()
}

/// Keeps a provider name (already one of the configured, or an error) safe in a fragment.
fn percent_encode(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect()
}

/// The callback's work: the one-time login code, or why not.
async fn complete(
    state: &State,
    name: &str,
    params: CallbackParams,
    cookie: Option<String>,
) -> Result<String> {
    let providers = providers_of(state)?;
    providers.config(name).map_err(ApiError::from)?;
    if let Some(error) = params.error {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            format!("the provider refused the sign-in: {error}"),
        ));
    }
    let (Some(code), Some(returned_state)) = (params.code, params.state) else {
        return Err(ApiError::new(
            ErrorCode::MissingField,
            "the callback needs `code` and `state`",
        ));
    };
    let Some(cookie) = cookie else {
        return Err(ApiError::new(
            ErrorCode::TokenInvalid,
            "no sign-in in progress in this browser (the cookie is missing or expired)",
        ));
    };
    let auth = state.auth.clone();
    let name = name.to_owned();
    state
        .offload(async move {
            Ok::<_, ApiError>(
                auth.complete_oidc_flow(&providers, &name, &cookie, &code, &returned_state)
                    .await?,
            )
        })
        .await?
}

/// `POST /api/auth/oidc/{provider}/exchange` → `{access, refresh, user}`.
async fn exchange(
    req: HttpRequest,
    state: State,
    path: web::Path<String>,
    body: web::Json<CodeBody>,
) -> Result<HttpResponse> {
    state.auth_limiter.check(state.client_ip(req.head()))?;
    let providers = providers_of(&state)?;
    let name = path.into_inner();
    providers.config(&name).map_err(ApiError::from)?;
    let code = body.into_inner().code;
    let auth = state.auth.clone();
    run(&state, async move {
        ok(auth.redeem_login_code(&name, &code).await?)
    })
    .await
}
