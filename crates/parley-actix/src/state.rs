//! The shared state every handler sees, and the authenticated-user extractor.

use crate::config::HttpConfig;
use crate::error::ApiError;
use crate::limit::{AccountLimiter, AuthLimiter};
use actix_web::dev::{Payload, RequestHead};
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use parley_auth::Auth;
use parley_core::Engine;
use parley_domain::User;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::watch;

/// What the transport needs: the engine (which owns the store and the layer), the auth
/// service, the transport settings and the multi-thread runtime that runs store work.
/// Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The chat engine of this process.
    pub engine: Engine,
    /// Accounts and tokens.
    pub auth: Auth,
    /// Transport settings.
    pub config: Arc<HttpConfig>,
    /// The application's multi-thread runtime. actix runs handlers on single-thread worker
    /// runtimes, where dropping an unfinished SQLite query (a client hanging up mid-request)
    /// panics in diesel-async (it blocks in place to finish the query). Store work therefore
    /// runs as tasks on this runtime ([`AppState::offload`]), which finish even when the
    /// request that started them is gone.
    pub runtime: tokio::runtime::Handle,
    /// Per-address limits on the account endpoints.
    pub(crate) auth_limiter: Arc<AuthLimiter>,
    /// Per-account limit on failed logins.
    pub(crate) account_limiter: Arc<AccountLimiter>,
    /// Per-address limit on new WebSocket connections.
    pub(crate) connect_limiter: Arc<AuthLimiter>,
    /// Per-address limit on guests' new WebSocket connections.
    pub(crate) guest_connect_limiter: Arc<AuthLimiter>,
    /// How many chat sockets are open. Their tasks run beside actix-server's connection
    /// tasks, which do not see them, so a graceful stop waits on this count first
    /// ([`AppState::sockets_closed`]).
    pub(crate) sockets: Arc<watch::Sender<usize>>,
    /// The OpenID Connect sign-in providers (none unless [`AppState::with_oidc`]).
    #[cfg(feature = "oidc")]
    pub(crate) oidc: Option<parley_auth::OidcProviders>,
}

/// Counts one open chat socket until dropped.
pub(crate) struct OpenSocket(Arc<watch::Sender<usize>>);

impl Drop for OpenSocket {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl AppState {
    /// Bundles the parts; `runtime` must be a multi-thread runtime (the one `main` runs on).
    pub fn new(
        engine: Engine,
        auth: Auth,
        config: HttpConfig,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            engine,
            auth,
            auth_limiter: Arc::new(AuthLimiter::new(config.auth_rate)),
            account_limiter: Arc::new(AccountLimiter::new(config.login_failure_rate)),
            connect_limiter: Arc::new(AuthLimiter::sockets(config.ws_connect_rate)),
            guest_connect_limiter: Arc::new(AuthLimiter::sockets(config.guest_connect_rate)),
            sockets: Arc::new(watch::Sender::new(0)),
            config: Arc::new(config),
            runtime,
            #[cfg(feature = "oidc")]
            oidc: None,
        }
    }

    /// Signs in with these OpenID Connect providers (`/api/auth/oidc/...`).
    #[cfg(feature = "oidc")]
    pub fn with_oidc(mut self, providers: parley_auth::OidcProviders) -> Self {
        self.oidc = Some(providers);
        self
    }

    /// Whether a request reached the client over HTTPS (forwarded scheme only from a
    /// trusted proxy: [`crate::TrustedProxies::is_https`]).
    pub fn is_https(&self, head: &RequestHead, tls: bool) -> bool {
        self.config.trusted_proxies.is_https(head, tls)
    }

    /// The client address of a request: the TCP peer, or, when the peer is a trusted
    /// reverse proxy, the address it forwarded ([`crate::TrustedProxies::client_ip`]).
    pub fn client_ip(&self, head: &RequestHead) -> Option<IpAddr> {
        self.config.trusted_proxies.client_of(head)
    }

    /// Chat sockets open now.
    pub fn open_sockets(&self) -> usize {
        *self.sockets.borrow()
    }

    /// Waits until no chat socket is open. After [`parley_core::Engine::shutdown`] every
    /// socket closes by itself (1001, "going away"); wait for that before stopping the HTTP
    /// server, whose graceful stop does not see the sockets' tasks.
    pub async fn sockets_closed(&self) {
        let mut open = self.sockets.subscribe();
        let _ = open.wait_for(|n| *n == 0).await;
    }

    /// Counts a socket as open until the returned guard is dropped.
    pub(crate) fn socket_opened(&self) -> OpenSocket {
        self.sockets.send_modify(|n| *n += 1);
        OpenSocket(Arc::clone(&self.sockets))
    }

    /// Runs `work` to completion on the application runtime and waits for it; if the caller
    /// is dropped the work still finishes there.
    pub async fn offload<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.runtime
            .spawn(work)
            .await
            .map_err(|e| ApiError::Internal(format!("request task failed: {e}")))
    }
}

/// The bearer token of `Authorization: Bearer <token>`, if present.
pub(crate) fn bearer_token(req: &HttpRequest) -> Option<&str> {
    bearer_token_in(req.headers())
}

/// The bearer token of `Authorization: Bearer <token>` in `headers`, if present.
pub(crate) fn bearer_token_in(headers: &header::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The user of a valid access token in `Authorization: Bearer`; extracting it answers 401
/// otherwise.
pub struct Authenticated(pub User);

/// [`Authenticated`] with the token's claims (its login `family`, when it was issued), for
/// the routes that act on the login itself (a password change, deleting the account).
pub struct AuthenticatedClaims(pub User, pub parley_auth::Claims);

impl FromRequest for AuthenticatedClaims {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req).map(str::to_owned);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::Internal("app state missing".into()))?;
            let token = token.ok_or_else(|| {
                ApiError::new(
                    parley_domain::protocol::ErrorCode::Unauthorized,
                    "authentication required: send Authorization: Bearer <access token>",
                )
            })?;
            let auth = state.auth.clone();
            let (claims, user) = state
                .offload(async move { auth.authenticate(&token).await })
                .await??;
            Ok(Self(user, claims))
        })
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    /// [`AuthenticatedClaims`] without the claims: one definition of "authenticated".
    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let claims = AuthenticatedClaims::from_request(req, payload);
        Box::pin(async move { claims.await.map(|AuthenticatedClaims(user, _)| Self(user)) })
    }
}
