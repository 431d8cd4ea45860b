//! # parley-auth
//!
//! Accounts and tokens for Parley, modeled on djangorestframework-simplejwt: bcrypt
//! passwords, short-lived access JWTs and longer refresh JWTs that rotate on use.
//!
//! - Passwords: [`Password`] never prints; rules (8 characters to 72 bytes, not the user
//!   name); bcrypt with a configurable cost, run on tokio's blocking pool. A login for an
//!   unknown name verifies against a dummy hash so timing reveals nothing.
//! - Tokens: claims `jti`, `sub`, `exp`, `iat`, `token_type`, `username` and `family`; HS256
//!   with a secret of at least 32 bytes by default, RS256 or EdDSA from PEM keys. Exactly one
//!   algorithm is accepted, so `alg: none` and algorithm swaps fail.
//! - Rotation: [`Auth::refresh`] revokes the presented refresh token (in the store's
//!   blacklist) and issues a new pair; a revoked token presented again fails and revokes its
//!   whole family. [`Auth::logout`] revokes the token and its family.
//!
//! ## Layout
//! - [`Auth`] (`service`): register, login, refresh, logout, authenticate.
//! - [`TokenService`], [`Claims`], [`TokenType`], [`TokenPair`] (`tokens`): JWT signing and
//!   verification, no I/O.
//! - [`Password`] (`password`): the newtype, its rules, hashing.
//! - [`AuthConfig`], [`SigningKey`] (`config`).
//! - [`OidcVerifier`] (`oidc`): external OpenID Connect ID tokens (e.g. Google sign-in),
//!   verified against configured keys; [`Auth::login_with_id_token`] finds or creates the
//!   account linked to the provider's `(iss, sub)`.
//! - `OidcProviders` (`oidc_http`, the `oidc-http` feature): providers from settings, their
//!   discovery documents and keys fetched over HTTPS and cached, the browser sign-in
//!   (authorization code with PKCE, `state`, `nonce`, a one-time login code) and the token
//!   sign-in of native apps. Its HTTP client is `reqwest` with rustls (why: see that module).
//! - [`AuthError`] (`error`): one variant per rejection.
//!
//! ## Must not depend on
//! Any HTTP framework (actix) or Redis; an HTTP *client* (`reqwest`) only with `oidc-http`,
//! which parley-server turns on (through parley-actix's `oidc`), so embedders that do not
//! sign in with OpenID Connect do not build it. It uses `parley-store` for users and revocations.
//! The `openapi` feature (parley-actix turns it on) adds `utoipa`, a data model and derive
//! macros, for the schemas of [`LoginResponse`] and [`TokenPair`].

mod config;
mod error;
mod oidc;
#[cfg(feature = "oidc-http")]
mod oidc_http;
mod password;
mod service;
mod tokens;

pub use config::{AuthConfig, SigningKey};
pub use error::{AuthError, Result};
pub use oidc::{OidcConfig, OidcIdentity, OidcVerifier};
#[cfg(feature = "oidc-http")]
pub use oidc_http::{
    DEFAULT_CACHE, FLOW_TTL_SECS, GOOGLE_ISSUER, KID_REFRESH_INTERVAL, LOGIN_CODE_TTL_SECS,
    MAX_CACHE, OidcFlow, OidcProviders, ProviderConfig, ProviderInfo, allowed_url,
};
pub use password::{Password, hash_password, verify_password};
pub use service::{Auth, GuestLogin, LoginResponse};
pub use tokens::{Claims, Refreshed, TokenPair, TokenService, TokenType};
