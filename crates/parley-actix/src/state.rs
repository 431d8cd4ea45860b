//! The shared state every handler sees, and the authenticated-user extractor.

use crate::config::HttpConfig;
use crate::error::ApiError;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use parley_auth::Auth;
use parley_core::Engine;
use parley_domain::User;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What the transport needs: the engine (which owns the store and the layer), the auth
/// service and the transport settings. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The chat engine of this process.
    pub engine: Engine,
    /// Accounts and tokens.
    pub auth: Auth,
    /// Transport settings.
    pub config: Arc<HttpConfig>,
}

impl AppState {
    /// Bundles the parts.
    pub fn new(engine: Engine, auth: Auth, config: HttpConfig) -> Self {
        Self {
            engine,
            auth,
            config: Arc::new(config),
        }
    }
}

/// The bearer token of `Authorization: Bearer <token>`, if present.
pub(crate) fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The user of a valid access token in `Authorization: Bearer`; extracting it answers 401
/// otherwise.
pub struct Authenticated(pub User);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req).map(str::to_owned);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::Internal("app state missing".into()))?;
            let token = token.ok_or_else(|| {
                ApiError::unauthorized(
                    "unauthorized",
                    "authentication required: send Authorization: Bearer <access token>",
                )
            })?;
            let (_, user) = state.auth.authenticate(&token).await?;
            Ok(Self(user))
        })
    }
}
