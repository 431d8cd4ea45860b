//! OpenID Connect providers fetched over HTTPS (the `oidc-http` feature): each provider's
//! discovery document and keys (JWKS) are fetched when first needed, cached as long as
//! their `Cache-Control: max-age` allows, and the keys fetched again when a token names a
//! key the cache does not hold (at most once per [`KID_REFRESH_INTERVAL`], so a flood of
//! tokens naming made-up keys cannot make Parley hammer the provider). A failed fetch is
//! never cached: the next request tries again, and meanwhile the caller gets
//! [`AuthError::ProviderUnavailable`].
//!
//! The browser sign-in (authorization code with PKCE S256, `state` and `nonce`) keeps no
//! server memory: its state travels in a value signed with Parley's token key
//! ([`Auth::sign_oidc_flow`]), and the callback hands the web page a one-time login code
//! ([`Auth::issue_login_code`]) that is spent by recording its id in the store's revoked-token
//! list, so it works once, on any server process.
//!
//! The HTTP client is `reqwest` (0.13): the most used and best kept async HTTP client of the
//! tokio ecosystem, on hyper; its default TLS is rustls with the aws-lc-rs provider that
//! jsonwebtoken already brings, verifying with the platform's certificate store. No
//! native-tls/OpenSSL, HTTP/2 or system-proxy lookups are compiled in. Plain `http://` is
//! accepted only for loopback hosts (`127.0.0.1`, `::1`, `localhost`), for tests and local
//! development.

use crate::error::{AuthError, Result};
use crate::oidc::{OidcConfig, OidcIdentity, OidcVerifier};
use crate::service::{Auth, LoginResponse};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parley_domain::{Timestamp, User, UserId};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The least time between two fetches of a provider's keys caused by tokens naming a key
/// the cache does not hold.
pub const KID_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// How long a discovery document or key set is kept when the provider sends no
/// `Cache-Control: max-age`.
pub const DEFAULT_CACHE: Duration = Duration::from_secs(3600);

/// The longest a discovery document or key set is kept, whatever the provider says.
pub const MAX_CACHE: Duration = Duration::from_secs(24 * 3600);

/// How long a browser has from the redirect to the provider to the callback.
pub const FLOW_TTL_SECS: i64 = 600;

/// How long the one-time login code the callback hands the web page is valid.
pub const LOGIN_CODE_TTL_SECS: i64 = 60;

/// Google's issuer: the `google` preset's default.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// The audience (`aud`) of a signed browser sign-in state.
const FLOW_KIND: &str = "parley-oidc-flow";
/// The audience (`aud`) of a one-time login code.
const CODE_KIND: &str = "parley-oidc-code";

/// One configured provider.
#[derive(Clone)]
pub struct ProviderConfig {
    /// The name in the routes (`/api/auth/oidc/{name}`): lower-case letters, digits, `_`, `-`.
    pub name: String,
    /// What the "Sign in with …" button says.
    pub display_name: String,
    /// The exact `iss` of its ID tokens; its discovery document is at
    /// `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// This application's client id at the provider (an accepted `aud`).
    pub client_id: String,
    /// The client secret (the code exchange of the browser flow); `None` for a public client.
    pub client_secret: Option<String>,
    /// More accepted `aud` values: the client ids of the native apps whose ID tokens the
    /// token flow accepts.
    pub extra_audiences: Vec<String>,
    /// The scopes asked for (`openid` is added if missing).
    pub scopes: Vec<String>,
    /// Link a first sign-in to the one existing account with the same email when the
    /// provider says it verified that email (never on an unverified email).
    pub link_verified_email: bool,
    /// The callback URL registered at the provider; `None`: derived from each request.
    pub redirect_uri: Option<String>,
    /// Timeout of each request to the provider.
    pub timeout: Duration,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field("scopes", &self.scopes)
            .field("link_verified_email", &self.link_verified_email)
            .finish_non_exhaustive()
    }
}

/// What the provider list (`GET /api/auth/oidc`) shows of a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderInfo {
    /// The name in the routes.
    pub name: String,
    /// What the button says ("Sign in with {display_name}").
    pub display_name: String,
}

/// The parts of a discovery document Parley uses.
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    /// Must equal the configured issuer.
    issuer: String,
    /// Where the browser is sent to sign in.
    authorization_endpoint: String,
    /// Where codes are exchanged.
    token_endpoint: String,
    /// The keys.
    jwks_uri: String,
}

/// A provider's cached documents.
#[derive(Default)]
struct Cache {
    /// The discovery document and until when it may be used.
    discovery: Option<(Discovery, Instant)>,
    /// The keys and until when they may be used.
    keys: Option<(OidcVerifier, Instant)>,
    /// When a token naming an unknown key last caused a fetch of the keys.
    last_kid_refresh: Option<Instant>,
}

/// One provider: its settings and cached documents.
struct Provider {
    /// Its settings.
    config: ProviderConfig,
    /// Held across a fetch, so concurrent requests share one fetch.
    cache: Mutex<Cache>,
}

/// The configured providers, sharing one HTTP client. Cheap to clone.
#[derive(Clone)]
pub struct OidcProviders {
    /// By configuration order.
    providers: Arc<Vec<Provider>>,
    /// Connection pool to every provider.
    http: reqwest::Client,
}

impl std::fmt::Debug for OidcProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.providers.iter().map(|p| &p.config))
            .finish()
    }
}

/// True for a URL Parley may fetch or send a browser to: `https://`, or `http://` on a
/// loopback host.
pub fn allowed_url(url: &str) -> bool {
    match reqwest::Url::parse(url) {
        Ok(u) => match u.scheme() {
            "https" => u.host().is_some(),
            "http" => {
                let host = u.host_str().unwrap_or("");
                let host = host.trim_start_matches('[').trim_end_matches(']');
                host.eq_ignore_ascii_case("localhost")
                    || host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            _ => false,
        },
        Err(_) => false,
    }
}

/// `max-age` of a `Cache-Control` header (0 for `no-store`/`no-cache`), capped at
/// [`MAX_CACHE`]; [`DEFAULT_CACHE`] when it says nothing.
fn cache_for(headers: &reqwest::header::HeaderMap) -> Duration {
    let Some(value) = headers
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
    else {
        return DEFAULT_CACHE;
    };
    let mut max_age = None;
    for part in value.split(',').map(str::trim) {
        let lower = part.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Duration::ZERO;
        }
        if let Some(n) = lower.strip_prefix("max-age=") {
            max_age = n.trim_matches('"').parse::<u64>().ok();
        }
    }
    max_age.map_or(DEFAULT_CACHE, |s| Duration::from_secs(s).min(MAX_CACHE))
}

fn unavailable(provider: &str, what: &str, e: impl std::fmt::Display) -> AuthError {
    AuthError::ProviderUnavailable(format!("{provider}: {what}: {e}"))
}

impl OidcProviders {
    /// Checks the providers' settings (names, URLs, client ids) and builds the HTTP client.
    /// Nothing is fetched yet. `Config` names the first bad provider.
    pub fn new(configs: Vec<ProviderConfig>) -> Result<Self> {
        let bad = |name: &str, why: &str| {
            Err(AuthError::Config(format!("oidc provider {name:?}: {why}")))
        };
        let mut names = Vec::new();
        for c in &configs {
            if c.name.is_empty()
                || !c.name.chars().all(|ch| {
                    ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-'
                })
            {
                return bad(
                    &c.name,
                    "the name must be lower-case letters, digits, _ or -",
                );
            }
            if names.contains(&c.name) {
                return bad(&c.name, "configured twice");
            }
            names.push(c.name.clone());
            if !allowed_url(&c.issuer) {
                return bad(
                    &c.name,
                    "the issuer must be an https:// URL (http:// only on a loopback host)",
                );
            }
            if c.client_id.is_empty() {
                return bad(&c.name, "client_id is required");
            }
            if let Some(uri) = &c.redirect_uri
                && reqwest::Url::parse(uri).is_err()
            {
                return bad(&c.name, "redirect_uri is not a URL");
            }
            if c.timeout.is_zero() {
                return bad(&c.name, "the timeout must be positive");
            }
        }
        let timeout = configs
            .iter()
            .map(|c| c.timeout)
            .max()
            .unwrap_or(Duration::from_secs(10));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // Discovery and keys are never fetched through a redirect to elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("parley/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AuthError::Config(format!("the OIDC HTTP client: {e}")))?;
        Ok(Self {
            providers: Arc::new(
                configs
                    .into_iter()
                    .map(|config| Provider {
                        config,
                        cache: Mutex::new(Cache::default()),
                    })
                    .collect(),
            ),
            http,
        })
    }

    /// The providers, for the sign-in buttons.
    pub fn list(&self) -> Vec<ProviderInfo> {
        self.providers
            .iter()
            .map(|p| ProviderInfo {
                name: p.config.name.clone(),
                display_name: p.config.display_name.clone(),
            })
            .collect()
    }

    /// True when no provider is configured.
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    fn provider(&self, name: &str) -> Result<&Provider> {
        self.providers
            .iter()
            .find(|p| p.config.name == name)
            .ok_or_else(|| AuthError::UnknownProvider(name.to_owned()))
    }

    /// The settings of provider `name`; `UnknownProvider` if there is none.
    pub fn config(&self, name: &str) -> Result<&ProviderConfig> {
        Ok(&self.provider(name)?.config)
    }

    async fn get(&self, provider: &Provider, url: &str, what: &str) -> Result<(String, Duration)> {
        let name = &provider.config.name;
        if !allowed_url(url) {
            return Err(unavailable(name, what, format!("refusing to fetch {url}")));
        }
        let response = self
            .http
            .get(url)
            .timeout(provider.config.timeout)
            .send()
            .await
            .map_err(|e| unavailable(name, what, e))?;
        if !response.status().is_success() {
            return Err(unavailable(
                name,
                what,
                format!("HTTP {}", response.status()),
            ));
        }
        let ttl = cache_for(response.headers());
        let body = response
            .text()
            .await
            .map_err(|e| unavailable(name, what, e))?;
        Ok((body, ttl))
    }

    /// The provider's discovery document, cached (the cache lock is held by the caller).
    async fn discovery(&self, provider: &Provider, cache: &mut Cache) -> Result<Discovery> {
        if let Some((d, until)) = &cache.discovery
            && Instant::now() < *until
        {
            return Ok(d.clone());
        }
        let name = &provider.config.name;
        let url = format!(
            "{}/.well-known/openid-configuration",
            provider.config.issuer.trim_end_matches('/')
        );
        let (body, ttl) = self.get(provider, &url, "discovery").await?;
        let d: Discovery =
            serde_json::from_str(&body).map_err(|e| unavailable(name, "discovery", e))?;
        if d.issuer != provider.config.issuer {
            return Err(unavailable(
                name,
                "discovery",
                format!("it names the issuer {:?}", d.issuer),
            ));
        }
        for url in [&d.authorization_endpoint, &d.token_endpoint, &d.jwks_uri] {
            if !allowed_url(url) {
                return Err(unavailable(
                    name,
                    "discovery",
                    format!("refusing the URL {url}"),
                ));
            }
        }
        cache.discovery = Some((d.clone(), Instant::now() + ttl));
        Ok(d)
    }

    /// Fetches the keys and caches them.
    async fn fetch_keys(&self, provider: &Provider, cache: &mut Cache) -> Result<OidcVerifier> {
        let d = self.discovery(provider, cache).await?;
        let (body, ttl) = self.get(provider, &d.jwks_uri, "keys").await?;
        let mut audiences = vec![provider.config.client_id.clone()];
        audiences.extend(provider.config.extra_audiences.iter().cloned());
        let verifier = OidcVerifier::new(&OidcConfig {
            issuer: provider.config.issuer.clone(),
            audiences,
            jwks_json: body,
        })
        .map_err(|e| unavailable(&provider.config.name, "keys", e))?;
        cache.keys = Some((verifier.clone(), Instant::now() + ttl));
        tracing::debug!(provider = %provider.config.name, "fetched the provider's keys");
        Ok(verifier)
    }

    /// Verifies an ID token of provider `name`: signature with a key of its key set (fetched
    /// again, at most once per [`KID_REFRESH_INTERVAL`], when the token names an unknown
    /// key), algorithm, `iss`, `aud`, `exp`, and `nonce` when one is expected.
    /// `UnknownProvider`, `ProviderUnavailable`, `Expired` or `InvalidToken` otherwise.
    pub async fn verify(
        &self,
        name: &str,
        id_token: &str,
        nonce: Option<&str>,
    ) -> Result<OidcIdentity> {
        let provider = self.provider(name)?;
        let verifier = {
            let mut cache = provider.cache.lock().await;
            let now = Instant::now();
            let cached = match &cache.keys {
                Some((v, until)) if now < *until => Some(v.clone()),
                _ => None,
            };
            match cached {
                Some(v) if v.knows_key_of(id_token) => v,
                Some(v) => {
                    let may_refresh = cache
                        .last_kid_refresh
                        .is_none_or(|at| now.duration_since(at) >= KID_REFRESH_INTERVAL);
                    if may_refresh {
                        cache.last_kid_refresh = Some(now);
                        self.fetch_keys(provider, &mut cache).await?
                    } else {
                        v
                    }
                }
                None => self.fetch_keys(provider, &mut cache).await?,
            }
        };
        let identity = verifier.verify(id_token)?;
        if let Some(expected) = nonce
            && identity.nonce.as_deref() != Some(expected)
        {
            return Err(AuthError::InvalidToken(
                "the ID token's nonce is not this sign-in's".to_owned(),
            ));
        }
        Ok(identity)
    }

    /// Where to send the browser: the provider's authorization endpoint with this sign-in's
    /// `state`, `nonce` and PKCE challenge (S256 of `code_verifier`).
    pub async fn authorization_url(
        &self,
        name: &str,
        redirect_uri: &str,
        flow: &OidcFlow,
    ) -> Result<String> {
        let provider = self.provider(name)?;
        let d = {
            let mut cache = provider.cache.lock().await;
            self.discovery(provider, &mut cache).await?
        };
        let mut scopes = provider.config.scopes.clone();
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".to_owned());
        }
        let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(flow.verifier.as_bytes()));
        let url = reqwest::Url::parse_with_params(
            &d.authorization_endpoint,
            &[
                ("response_type", "code"),
                ("client_id", provider.config.client_id.as_str()),
                ("redirect_uri", redirect_uri),
                ("scope", scopes.join(" ").as_str()),
                ("state", flow.state.as_str()),
                ("nonce", flow.nonce.as_str()),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ],
        )
        .map_err(|e| unavailable(name, "authorization endpoint", e))?;
        Ok(url.into())
    }

    /// Exchanges an authorization code at the provider's token endpoint (with the client
    /// secret and the PKCE verifier) for its ID token. A code the provider refuses (used,
    /// expired, not for this client) is `InvalidToken`; a provider that cannot be reached or
    /// answers nonsense is `ProviderUnavailable`.
    pub async fn exchange_code(
        &self,
        name: &str,
        code: &str,
        code_verifier: &str,
        redirect_uri: &str,
    ) -> Result<String> {
        let provider = self.provider(name)?;
        let d = {
            let mut cache = provider.cache.lock().await;
            self.discovery(provider, &mut cache).await?
        };
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", provider.config.client_id.as_str()),
            ("code_verifier", code_verifier),
        ];
        if let Some(secret) = &provider.config.client_secret {
            form.push(("client_secret", secret.as_str()));
        }
        let response = self
            .http
            .post(&d.token_endpoint)
            .timeout(provider.config.timeout)
            .form(&form)
            .send()
            .await
            .map_err(|e| unavailable(name, "token endpoint", e))?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| unavailable(name, "token endpoint", e))?;
        if status.is_client_error() {
            let error = body["error"].as_str().unwrap_or("refused");
            return Err(AuthError::InvalidToken(format!(
                "the provider refused the code: {error}"
            )));
        }
        if !status.is_success() {
            return Err(unavailable(
                name,
                "token endpoint",
                format!("HTTP {status}"),
            ));
        }
        body["id_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| unavailable(name, "token endpoint", "no id_token in the answer"))
    }
}

/// A browser sign-in in flight: what the start route signs into a cookie and the callback
/// checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcFlow {
    /// Always `parley-oidc-flow`.
    aud: String,
    /// Unique id: the callback spends it, so a flow completes once.
    pub jti: String,
    /// The provider's name.
    pub provider: String,
    /// The `state` sent to the provider, which must come back to the callback.
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier (its S256 hash went to the provider).
    pub verifier: String,
    /// The callback URL sent to the provider (the code exchange repeats it).
    pub redirect_uri: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
}

/// A random token of 32 hexadecimal digits (122 random bits of a UUID v4).
fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn now_secs() -> i64 {
    Timestamp::now().millis() / 1000
}

impl OidcFlow {
    /// A new sign-in with provider `provider` coming back to `redirect_uri`: fresh random
    /// `state`, `nonce` and PKCE verifier (64 characters), valid [`FLOW_TTL_SECS`].
    pub fn new(provider: &str, redirect_uri: &str) -> Self {
        Self {
            aud: FLOW_KIND.to_owned(),
            jti: random_hex(),
            provider: provider.to_owned(),
            state: random_hex(),
            nonce: random_hex(),
            verifier: format!("{}{}", random_hex(), random_hex()),
            redirect_uri: redirect_uri.to_owned(),
            exp: now_secs().saturating_add(FLOW_TTL_SECS),
        }
    }
}

/// A one-time login code: whose login, from which provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LoginCode {
    /// Always `parley-oidc-code`.
    aud: String,
    /// Unique id: spending the code records it as revoked.
    jti: String,
    /// The user id.
    sub: String,
    /// The provider's name.
    provider: String,
    /// Expiry, seconds since the epoch.
    exp: i64,
}

impl Auth {
    /// Signs a browser sign-in's state (for a short-lived cookie).
    pub fn sign_oidc_flow(&self, flow: &OidcFlow) -> Result<String> {
        self.tokens().sign_value(flow)
    }

    /// The sign-in state of a cookie, checked (signature, expiry) and spent: a second
    /// callback with the same state is `Revoked`, on any process.
    pub async fn spend_oidc_flow(&self, signed: &str) -> Result<OidcFlow> {
        let flow: OidcFlow = self.tokens().verify_value(signed, FLOW_KIND)?;
        let until = Timestamp(flow.exp.saturating_mul(1000));
        if !self.store().revoke_token(&flow.jti, until).await? {
            return Err(AuthError::Revoked);
        }
        Ok(flow)
    }

    /// Finds or creates the account of a verified identity from `provider` and returns a
    /// one-time login code for it, valid [`LOGIN_CODE_TTL_SECS`]; the web page trades it for
    /// tokens with [`Auth::redeem_login_code`].
    pub async fn issue_login_code(
        &self,
        provider: &str,
        identity: &OidcIdentity,
        link_verified_email: bool,
    ) -> Result<(String, User)> {
        let user = self.user_of_identity(identity, link_verified_email).await?;
        let code = self.tokens().sign_value(&LoginCode {
            aud: CODE_KIND.to_owned(),
            jti: random_hex(),
            sub: user.id.to_string(),
            provider: provider.to_owned(),
            exp: now_secs().saturating_add(LOGIN_CODE_TTL_SECS),
        })?;
        Ok((code, user))
    }

    /// Trades a one-time login code of `provider` for a login (`{access, refresh, user}`).
    /// `Revoked` when it was used already, `Expired`, `InvalidToken` (forged, or another
    /// provider's), `UnknownUser` when the account is gone.
    pub async fn redeem_login_code(&self, provider: &str, code: &str) -> Result<LoginResponse> {
        let code: LoginCode = self.tokens().verify_value(code, CODE_KIND)?;
        if code.provider != provider {
            return Err(AuthError::InvalidToken(
                "the login code is another provider's".to_owned(),
            ));
        }
        let id = code
            .sub
            .parse::<i64>()
            .map(UserId)
            .map_err(|_| AuthError::InvalidToken("the login code names no user".to_owned()))?;
        let until = Timestamp(code.exp.saturating_mul(1000));
        if !self.store().revoke_token(&code.jti, until).await? {
            return Err(AuthError::Revoked);
        }
        self.login_user(id).await
    }

    /// Signs in with an ID token of `provider` that a native client already holds: verified
    /// (no nonce: the app asked for the token itself), then answered like a login.
    pub async fn login_oidc_token(
        &self,
        providers: &OidcProviders,
        provider: &str,
        id_token: &str,
    ) -> Result<LoginResponse> {
        let identity = providers.verify(provider, id_token, None).await?;
        let link = providers.config(provider)?.link_verified_email;
        self.login_identity(&identity, link).await
    }

    /// The browser sign-in's callback: spends the flow signed in `cookie` (once, on any
    /// process), checks that it is `provider`'s and that the provider returned its `state`,
    /// trades `code` at the provider's token endpoint, verifies the ID token with the flow's
    /// nonce, and returns the one-time login code the page trades by POST
    /// ([`Auth::redeem_login_code`]).
    pub async fn complete_oidc_flow(
        &self,
        providers: &OidcProviders,
        provider: &str,
        cookie: &str,
        code: &str,
        returned_state: &str,
    ) -> Result<String> {
        let flow = self.spend_oidc_flow(cookie).await?;
        if flow.provider != provider || flow.state != returned_state {
            return Err(AuthError::InvalidToken(
                "the sign-in state does not match this browser's".to_owned(),
            ));
        }
        let id_token = providers
            .exchange_code(provider, code, &flow.verifier, &flow.redirect_uri)
            .await?;
        let identity = providers
            .verify(provider, &id_token, Some(&flow.nonce))
            .await?;
        let link = providers.config(provider)?.link_verified_email;
        let (code, _) = self.issue_login_code(provider, &identity, link).await?;
        Ok(code)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic in a test is a failed assertion
mod tests {
    use super::*;
    use reqwest::header::{CACHE_CONTROL, HeaderMap, HeaderValue};

    fn cache(value: Option<&'static str>) -> Duration {
        let mut headers = HeaderMap::new();
        if let Some(v) = value {
            headers.insert(CACHE_CONTROL, HeaderValue::from_static(v));
        }
        cache_for(&headers)
    }

    #[test]
    fn cache_control_sets_how_long_documents_are_kept() {
        assert_eq!(
            cache(Some("public, max-age=19845, must-revalidate, no-transform")),
            Duration::from_secs(19845)
        );
        assert_eq!(cache(None), DEFAULT_CACHE);
        assert_eq!(cache(Some("public")), DEFAULT_CACHE);
        assert_eq!(cache(Some("no-store")), Duration::ZERO);
        assert_eq!(cache(Some("max-age=600, no-cache")), Duration::ZERO);
        assert_eq!(cache(Some("max-age=99999999")), MAX_CACHE);
        assert_eq!(cache(Some("max-age=soon")), DEFAULT_CACHE);
    }

    #[test]
    fn plain_http_only_on_loopback() {
        for ok in [
            "https://accounts.google.com",
            "https://login.example.com/tenant/v2.0",
            "http://127.0.0.1:8080",
            "http://[::1]:9000/x",
            "http://localhost:3000",
        ] {
            assert!(allowed_url(ok), "{ok}");
        }
        for bad in [
            "http://accounts.google.com",
            "http://10.0.0.1",
            "http://127.0.0.1.evil.example",
            "ftp://127.0.0.1",
            "not a url",
            "",
        ] {
            assert!(!allowed_url(bad), "{bad}");
        }
    }

    #[test]
    fn a_flow_has_fresh_random_values_and_a_pkce_verifier_of_valid_length() {
        let a = OidcFlow::new("google", "https://chat.example.com/cb");
        let b = OidcFlow::new("google", "https://chat.example.com/cb");
        assert_ne!(a.state, b.state);
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.verifier, b.verifier);
        // RFC 7636: 43 to 128 unreserved characters.
        assert!((43..=128).contains(&a.verifier.len()));
        assert!(a.verifier.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
