//! [`Auth`]: registration, login, refresh rotation, logout and token authentication, over the
//! store's users and revoked-token blacklist.

use crate::config::AuthConfig;
use crate::error::{AuthError, Result};
use crate::oidc::{OidcIdentity, OidcVerifier, username_base};
use crate::password::{Password, hash_password, verify_password};
use crate::tokens::{Claims, Refreshed, TokenService, TokenType};
use parley_domain::{DisplayName, Email, Timestamp, User, UserName};
use parley_store::{NewUser, Store, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A display name as a request gives it: absent or blank is none.
fn parse_display_name(raw: Option<&str>) -> Result<Option<DisplayName>> {
    match raw {
        Some(raw) => DisplayName::parse_optional(raw)
            .map_err(|e| AuthError::InvalidDisplayName(e.to_string())),
        None => Ok(None),
    }
}

/// The login answer, shaped like djangorestframework-simplejwt's and extended with the user:
/// `{"access": "...", "refresh": "...", "user": {"id", "username", "email", "display_name", "is_staff",
/// "is_guest", "is_active", "joined_at", "last_login"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginResponse {
    /// The access token.
    pub access: String,
    /// The refresh token.
    pub refresh: String,
    /// The account, with `last_login` already set to this login.
    pub user: User,
}

/// The answer to a guest sign-in: an access token and nothing to refresh it with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GuestLogin {
    /// The access token (the configured access lifetime; there is no refresh token).
    pub access: String,
    /// The guest identity: `is_guest` is true and the user name is `guest.{name}.{tag}`.
    pub user: User,
}

/// Accounts and tokens. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    /// Users and revocations.
    store: Store,
    /// Signs and verifies JWTs.
    tokens: TokenService,
    /// bcrypt cost for new hashes.
    cost: u32,
    /// Verified against when the user does not exist, so an unknown name costs as much time
    /// as a wrong password and timing does not reveal which names exist.
    dummy_hash: String,
    /// See [`AuthConfig::revoke_family_on_reuse`].
    revoke_family_on_reuse: bool,
    /// Rooms every new account joins ([`Auth::use_default_rooms`]).
    default_rooms: std::sync::OnceLock<Vec<parley_domain::RoomName>>,
    /// See [`AuthConfig::rotate_refresh`].
    rotate_refresh: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("tokens", &self.inner.tokens)
            .field("cost", &self.inner.cost)
            .finish()
    }
}

impl Auth {
    /// Builds the service; fails with `Config` for a bad key (e.g. an HS256 secret under 32
    /// bytes) or lifetime. Computes the dummy hash once, so call it at start-up (or from a
    /// blocking context when the cost is high).
    pub fn new(store: Store, config: &AuthConfig) -> Result<Self> {
        let tokens = TokenService::new(config)?;
        let dummy_hash = bcrypt::hash("parley-dummy-password", config.bcrypt_cost)
            .map_err(|e| AuthError::Config(format!("bcrypt cost {}: {e}", config.bcrypt_cost)))?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                tokens,
                cost: config.bcrypt_cost,
                dummy_hash,
                revoke_family_on_reuse: config.revoke_family_on_reuse,
                default_rooms: std::sync::OnceLock::new(),
                rotate_refresh: config.rotate_refresh,
            }),
        })
    }

    /// The token service (for verifying access tokens without the store).
    pub fn tokens(&self) -> &TokenService {
        &self.inner.tokens
    }

    /// Makes every account created from now on (registered, or made by a first external
    /// sign-in; never a guest) join `rooms` (the `default_rooms` setting; rooms that do not
    /// exist are skipped: the server creates them at start). Set once; later calls are
    /// ignored.
    pub fn use_default_rooms(&self, rooms: Vec<parley_domain::RoomName>) {
        if self.inner.default_rooms.set(rooms).is_err() {
            tracing::warn!("Auth::use_default_rooms called twice: the first list stays");
        }
    }

    /// Joins a new account to the default rooms. A failure is logged, not returned: the
    /// account exists either way, and the user can join by hand.
    async fn join_default_rooms(&self, user: &User) {
        let Some(rooms) = self.inner.default_rooms.get() else {
            return;
        };
        if let Err(e) = self.inner.store.join_rooms(user.id, rooms).await {
            tracing::warn!(error = %e, user = %user.username, "could not join the default rooms");
        }
    }

    /// The store underneath.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Creates an account. `Invalid` for a malformed name or email, `WeakPassword` for a
    /// password breaking the rules, `UsernameTaken` if the name exists.
    pub async fn register(
        &self,
        username: &str,
        password: &Password,
        email: Option<&str>,
    ) -> Result<User> {
        self.register_with_profile(username, password, email, None)
            .await
    }

    /// [`Auth::register`] with a display name (`InvalidDisplayName` when it breaks the
    /// rules of [`DisplayName`]; an empty one is none).
    pub async fn register_with_profile(
        &self,
        username: &str,
        password: &Password,
        email: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<User> {
        let display_name = parse_display_name(display_name)?;
        let username =
            UserName::parse_account(username).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let email = email
            .map(Email::parse)
            .transpose()
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        password.check_rules(&username)?;
        let password_hash = hash_password(password, self.inner.cost).await?;
        let new = NewUser {
            username,
            email,
            display_name,
            password_hash,
            is_staff: false,
            is_guest: false,
        };
        match self.inner.store.create_user(&new).await {
            Ok(user) => {
                tracing::info!(user = %user.username, id = %user.id, "registered");
                self.join_default_rooms(&user).await;
                Ok(user)
            }
            Err(StoreError::Conflict(_)) => Err(AuthError::UsernameTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes a guest identity for a visitor who chose `name` (a valid user name of at most
    /// [`UserName::GUEST_DISPLAY_MAX`] characters; `Invalid` otherwise) and returns an access
    /// token for it (`GuestNameBanned` for a name staff banned). The identity is a user row flagged `is_guest` named
    /// `guest.{name}.{tag}` with a random tag, a name no account can register; it has no
    /// usable password and gets no refresh token, so nobody can log in to it or keep it.
    /// Whether guests are allowed at all is the caller's decision.
    pub async fn guest(&self, name: &str) -> Result<GuestLogin> {
        let display = UserName::parse(name).map_err(|e| AuthError::Invalid(e.to_string()))?;
        if self.inner.store.guest_name_banned(display.as_str()).await? {
            return Err(AuthError::GuestNameBanned);
        }
        // Five random characters: a clash with a live guest of the same name is rare and
        // retried; a handful of clashes in a row means the store is the problem.
        for _ in 0..5 {
            let tag: String = uuid::Uuid::new_v4()
                .simple()
                .to_string()
                .chars()
                .take(UserName::GUEST_TAG_LEN)
                .collect();
            let username =
                UserName::guest(&display, &tag).map_err(|e| AuthError::Invalid(e.to_string()))?;
            let new = NewUser {
                username,
                email: None,
                password_hash: "!".to_owned(),
                display_name: None,
                is_staff: false,
                is_guest: true,
            };
            match self.inner.store.create_user(&new).await {
                Ok(user) => {
                    let access = self.inner.tokens.issue_access(&user)?;
                    tracing::info!(user = %user.username, id = %user.id, "guest signed in");
                    return Ok(GuestLogin { access, user });
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AuthError::Internal(format!(
            "no free guest name for {display}"
        )))
    }

    /// How recent a sign-in must be to delete an account that has no password: an access
    /// token issued at most this many seconds ago (5 minutes).
    pub const FRESH_SIGN_IN_SECS: i64 = 300;

    /// Changes what `user` says about themselves (`PATCH /api/me`): `display_name` and
    /// `email` are left alone when `None`, cleared with `Some(None)` (or an empty text),
    /// set otherwise. `InvalidDisplayName` / `Invalid` for a value breaking its rule,
    /// `EmailTaken` for an address another account uses (case-insensitively): an address
    /// identifies one account, as the e-mail linking of external sign-ins assumes. Guests
    /// have no profile (`Invalid`). Returns the updated account.
    pub async fn update_profile(
        &self,
        user: &User,
        display_name: Option<Option<&str>>,
        email: Option<Option<&str>>,
    ) -> Result<User> {
        if user.is_guest {
            return Err(AuthError::Invalid("guests have no profile".to_owned()));
        }
        let display_name = display_name.map(parse_display_name).transpose()?;
        let email = email
            .map(|e| {
                e.filter(|e| !e.trim().is_empty())
                    .map(Email::parse)
                    .transpose()
                    .map_err(|e| AuthError::Invalid(e.to_string()))
            })
            .transpose()?;
        match self
            .inner
            .store
            .update_profile(
                user.id,
                display_name.as_ref().map(Option::as_ref),
                email.as_ref().map(Option::as_ref),
            )
            .await
        {
            Ok(user) => Ok(user),
            Err(StoreError::Conflict(_)) => Err(AuthError::EmailTaken),
            Err(StoreError::NotFound(_)) => Err(AuthError::UnknownUser),
            Err(e) => Err(e.into()),
        }
    }

    /// Changes `user`'s own password (`POST /api/me/password`): `current` must be the
    /// password now (`InvalidCredentials` otherwise, also for an account that has none),
    /// `new` must keep the rules (`WeakPassword`). The account's token epoch is raised, so
    /// every token issued before (every login's access and refresh tokens) is refused from
    /// now on; the caller's login (`family`) goes on with the fresh pair returned, in the
    /// same family, so its sockets stay open.
    pub async fn change_password(
        &self,
        user: &User,
        family: &str,
        current: &Password,
        new: &Password,
    ) -> Result<LoginResponse> {
        if !self.check_password(user, current).await? {
            return Err(AuthError::InvalidCredentials);
        }
        new.check_rules(&user.username)?;
        let hash = hash_password(new, self.inner.cost).await?;
        let user = self.inner.store.reset_password_hash(user.id, &hash).await?;
        let (pair, _) = self.inner.tokens.issue(&user, Some(family))?;
        tracing::info!(user = %user.username, "changed password");
        Ok(LoginResponse {
            access: pair.access,
            refresh: pair.refresh,
            user,
        })
    }

    /// Whether `user` may delete their own account with this proof: an account with a
    /// password must give it (`InvalidCredentials` when absent or wrong); one without (made
    /// by an external sign-in) needs a fresh sign-in, an access token issued at most
    /// [`Auth::FRESH_SIGN_IN_SECS`] ago (`StaleSignIn` otherwise).
    pub async fn confirm_deletion(
        &self,
        user: &User,
        claims: &Claims,
        password: Option<&Password>,
    ) -> Result<()> {
        if user.is_guest {
            return Err(AuthError::Invalid(
                "a guest has no account to delete".to_owned(),
            ));
        }
        if self.has_password(user).await? {
            return match password {
                Some(p) if self.check_password(user, p).await? => Ok(()),
                _ => Err(AuthError::InvalidCredentials),
            };
        }
        let age = Timestamp::now().millis() / 1000 - claims.iat;
        if age <= Self::FRESH_SIGN_IN_SECS {
            Ok(())
        } else {
            Err(AuthError::StaleSignIn)
        }
    }

    async fn has_password(&self, user: &User) -> Result<bool> {
        let creds = self.inner.store.credentials(&user.username).await?;
        Ok(creds.password_hash.starts_with("$2"))
    }

    /// Whether `password` is `user`'s password (false for an account without one).
    async fn check_password(&self, user: &User, password: &Password) -> Result<bool> {
        let creds = self.inner.store.credentials(&user.username).await?;
        let (hash, real) = if creds.password_hash.starts_with("$2") {
            (creds.password_hash.as_str(), true)
        } else {
            (self.inner.dummy_hash.as_str(), false)
        };
        let too_long = password.expose().len() > Password::MAX_BYTES;
        Ok(verify_password(password, hash).await? && real && !too_long)
    }

    /// Changes a user's password (rules apply).
    pub async fn set_password(&self, user: &User, password: &Password) -> Result<()> {
        password.check_rules(&user.username)?;
        let hash = hash_password(password, self.inner.cost).await?;
        Ok(self.inner.store.set_password_hash(user.id, &hash).await?)
    }

    /// Sets a password chosen by staff for `user` (rules apply; `WeakPassword` otherwise) and
    /// raises the account's token epoch, so every token issued before (every login's refresh
    /// token and access token) is refused from now on. Returns the updated account.
    pub async fn reset_password(&self, user: &User, password: &Password) -> Result<User> {
        password.check_rules(&user.username)?;
        let hash = hash_password(password, self.inner.cost).await?;
        Ok(self.inner.store.reset_password_hash(user.id, &hash).await?)
    }

    /// Checks a user name and password and returns a fresh token pair (a new family) with the
    /// user, whose `last_login` it records. `InvalidCredentials` for an unknown user or a wrong
    /// password alike, after the same bcrypt work.
    pub async fn login(&self, username: &str, password: &Password) -> Result<LoginResponse> {
        let found = match UserName::parse(username) {
            Ok(name) => match self.inner.store.credentials(&name).await {
                Ok(creds) => Some(creds),
                Err(StoreError::NotFound(_)) => None,
                Err(e) => return Err(e.into()),
            },
            Err(_) => None,
        };
        let Some(creds) = found else {
            // Same cost as a real check; the result does not matter.
            let _ = verify_password(password, &self.inner.dummy_hash).await?;
            return Err(AuthError::InvalidCredentials);
        };
        // Accounts made by an external sign-in have no usable password hash ("!").
        let hash = if creds.password_hash.starts_with("$2") {
            creds.password_hash.as_str()
        } else {
            self.inner.dummy_hash.as_str()
        };
        // bcrypt reads only the first 72 bytes: a longer password would open the account
        // whatever follows them. Register refuses those; login never accepts one.
        let too_long = password.expose().len() > Password::MAX_BYTES;
        if !verify_password(password, hash).await? || hash != creds.password_hash || too_long {
            return Err(AuthError::InvalidCredentials);
        }
        // Said only to whoever knows the password.
        if !creds.user.is_active {
            return Err(AuthError::AccountDisabled);
        }
        let user = self
            .inner
            .store
            .record_login(creds.user.id, Timestamp::now())
            .await?;
        let (pair, _) = self.inner.tokens.issue(&user, None)?;
        tracing::info!(user = %user.username, "logged in");
        Ok(LoginResponse {
            access: pair.access,
            refresh: pair.refresh,
            user,
        })
    }

    /// Signs in with an ID token from an external OpenID Connect provider: verifies it
    /// with `verifier`, then logs in the account linked to the token's `(iss, sub)`, creating
    /// it on first sign-in (see [`Auth::login_identity`]; no linking by email).
    /// `Expired` / `InvalidToken` for a bad token.
    pub async fn login_with_id_token(
        &self,
        verifier: &OidcVerifier,
        id_token: &str,
    ) -> Result<LoginResponse> {
        let identity = verifier.verify(id_token)?;
        self.login_identity(&identity, false).await
    }

    /// Logs in the account of a verified external identity, a fresh token pair (a new
    /// family): the account linked to its `(iss, sub)`; else, with `link_verified_email` and
    /// an email the provider verified, the one account (not a guest) with that email, which
    /// is linked from now on; else a new account (user name from the preferred handle or
    /// email, with a `-N` suffix if taken; the email only if the provider verified it; no
    /// usable password). An unverified email never links.
    pub async fn login_identity(
        &self,
        identity: &OidcIdentity,
        link_verified_email: bool,
    ) -> Result<LoginResponse> {
        let user = self.user_of_identity(identity, link_verified_email).await?;
        if !user.is_active {
            return Err(AuthError::AccountDisabled);
        }
        let user = self
            .inner
            .store
            .record_login(user.id, Timestamp::now())
            .await?;
        let (pair, _) = self.inner.tokens.issue(&user, None)?;
        tracing::info!(user = %user.username, issuer = %identity.iss, "logged in with an external identity");
        Ok(LoginResponse {
            access: pair.access,
            refresh: pair.refresh,
            user,
        })
    }

    /// The account of an external identity, linked or created (see [`Auth::login_identity`]),
    /// without logging it in.
    pub async fn user_of_identity(
        &self,
        identity: &OidcIdentity,
        link_verified_email: bool,
    ) -> Result<User> {
        let store = &self.inner.store;
        if let Some(user) = store.user_by_external(&identity.iss, &identity.sub).await? {
            return Ok(user);
        }
        if link_verified_email
            && identity.email_verified == Some(true)
            && let Some(email) = identity.email.as_deref().and_then(|e| Email::parse(e).ok())
        {
            // Two accounts with the email: which one is meant is unknowable; link neither.
            let found = store.users_by_email(&email, 2).await?;
            if let [user] = found.as_slice() {
                match store
                    .link_external(user.id, &identity.iss, &identity.sub)
                    .await
                {
                    Ok(()) => {
                        tracing::info!(user = %user.username, issuer = %identity.iss, "linked an external identity by its verified email");
                        return Ok(user.clone());
                    }
                    // A concurrent first sign-in linked it already.
                    Err(StoreError::Conflict(_)) => {
                        if let Some(user) =
                            store.user_by_external(&identity.iss, &identity.sub).await?
                        {
                            return Ok(user);
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.create_external(identity).await
    }

    /// Logs in account `id` without a password (the caller proved who it is, e.g. with a
    /// one-time login code): records the login, a fresh token pair. `UnknownUser` if the
    /// account is gone.
    pub async fn login_user(&self, id: parley_domain::UserId) -> Result<LoginResponse> {
        let user = match self.inner.store.record_login(id, Timestamp::now()).await {
            Ok(user) => user,
            Err(StoreError::NotFound(_)) => return Err(AuthError::UnknownUser),
            Err(e) => return Err(e.into()),
        };
        if !user.is_active {
            return Err(AuthError::AccountDisabled);
        }
        let (pair, _) = self.inner.tokens.issue(&user, None)?;
        tracing::info!(user = %user.username, "logged in with a one-time login code");
        Ok(LoginResponse {
            access: pair.access,
            refresh: pair.refresh,
            user,
        })
    }

    async fn create_external(&self, identity: &OidcIdentity) -> Result<User> {
        let store = &self.inner.store;
        let email = match identity.email_verified {
            Some(true) => identity.email.as_deref().and_then(|e| Email::parse(e).ok()),
            _ => None,
        };
        let base = username_base(identity);
        // The provider's `name` claim, cut to the limit; a name that still breaks a rule
        // (control characters) is dropped rather than failing the sign-in.
        let display = identity.name.as_deref().and_then(|n| {
            let cut: String = n.trim().chars().take(DisplayName::MAX_CHARS).collect();
            DisplayName::parse(&cut).ok()
        });
        for n in 1..=50u32 {
            let candidate = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let username =
                UserName::parse(&candidate).map_err(|e| AuthError::Internal(e.to_string()))?;
            let new = NewUser {
                username,
                email: email.clone(),
                display_name: display.clone(),
                password_hash: "!".to_owned(),
                is_staff: false,
                is_guest: false,
            };
            match store
                .create_external_user(&new, &identity.iss, &identity.sub)
                .await
            {
                Ok(user) => {
                    self.join_default_rooms(&user).await;
                    return Ok(user);
                }
                Err(StoreError::Conflict(_)) => {
                    // Either a concurrent first sign-in linked the identity, or the name is taken.
                    if let Some(user) = store.user_by_external(&identity.iss, &identity.sub).await?
                    {
                        return Ok(user);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(AuthError::Internal(format!(
            "no free user name derived from {base:?}"
        )))
    }

    /// Trades a refresh token for a new access token. With rotation on (the default,
    /// [`AuthConfig::rotate_refresh`]) the answer carries a new refresh token too and the old
    /// one is revoked: presenting it again fails `Revoked` and, by default, revokes every token
    /// of its family. With rotation off the refresh token stays valid until it expires or is
    /// logged out. Also `Expired`, `InvalidToken`, `WrongTokenType` (an access token),
    /// `UnknownUser` (the account was deleted).
    pub async fn refresh(&self, refresh: &str) -> Result<Refreshed> {
        let claims = self.inner.tokens.verify(refresh, TokenType::Refresh)?;
        let store = &self.inner.store;
        if store.any_revoked(&[&claims.jti, &claims.family]).await? {
            if self.inner.rotate_refresh {
                self.on_reuse(&claims).await?;
            }
            return Err(AuthError::Revoked);
        }
        let user = self.user_of(&claims).await?;
        if !self.inner.rotate_refresh {
            return Ok(Refreshed {
                access: self.inner.tokens.issue_access_in(&user, &claims.family)?,
                refresh: None,
            });
        }
        // Exactly one of two racing refreshes with the same token wins this insert.
        if !store.revoke_token(&claims.jti, claims.expires_at()).await? {
            self.on_reuse(&claims).await?;
            return Err(AuthError::Revoked);
        }
        let (pair, _) = self.inner.tokens.issue(&user, Some(&claims.family))?;
        Ok(Refreshed {
            access: pair.access,
            refresh: Some(pair.refresh),
        })
    }

    async fn on_reuse(&self, claims: &Claims) -> Result<()> {
        if self.inner.revoke_family_on_reuse {
            tracing::warn!(user = %claims.sub, family = %claims.family, "refresh token reused: revoking its family");
            // Every token of the family expires within a refresh lifetime from now.
            let until = Timestamp::now().plus_seconds(self.inner.tokens.refresh_secs());
            self.inner.store.revoke_token(&claims.family, until).await?;
        }
        Ok(())
    }

    /// Revokes a refresh token and its family (the whole session): afterwards neither it
    /// nor any token rotated from the same login can be refreshed. Logging out twice is fine.
    /// The token's claims: whose login ended, and which (its `family`).
    pub async fn logout(&self, refresh: &str) -> Result<Claims> {
        let claims = self.inner.tokens.verify(refresh, TokenType::Refresh)?;
        let until = Timestamp::now().plus_seconds(self.inner.tokens.refresh_secs());
        self.inner
            .store
            .revoke_token(&claims.jti, claims.expires_at())
            .await?;
        self.inner.store.revoke_token(&claims.family, until).await?;
        Ok(claims)
    }

    /// Verifies an access token without the store: signature, algorithm, expiry, type.
    /// The hot path (every request); pair it with [`Auth::authenticate`] where a deleted
    /// account must be refused at once.
    pub fn verify_access(&self, access: &str) -> Result<Claims> {
        self.inner.tokens.verify(access, TokenType::Access)
    }

    /// Verifies an access token and loads its user: `UnknownUser` if the account was deleted.
    pub async fn authenticate(&self, access: &str) -> Result<(Claims, User)> {
        let claims = self.verify_access(access)?;
        let user = self.user_of(&claims).await?;
        Ok((claims, user))
    }

    /// The token's account, refused when it was deactivated (`AccountDisabled`) or when
    /// the token predates a deactivation or a password reset by staff (`Revoked`: its epoch
    /// is older than the account's). The one lookup every authenticated request, socket
    /// handshake, `renew` and refresh already makes, so these checks cost no query.
    async fn user_of(&self, claims: &Claims) -> Result<User> {
        // On the connections kept for this read: a handshake never queues behind joins.
        let user = match self.inner.store.account_for_auth(claims.user_id()?).await {
            Ok(user) => user,
            Err(StoreError::NotFound(_)) => return Err(AuthError::UnknownUser),
            Err(e) => return Err(e.into()),
        };
        if !user.is_active {
            return Err(AuthError::AccountDisabled);
        }
        if claims.epoch != user.token_epoch {
            return Err(AuthError::Revoked);
        }
        Ok(user)
    }

    /// Clears away guests whose one access token had expired by `now` (see
    /// [`Store::prune_guests`]: the silent ones are deleted, those who posted stay as
    /// authors but leave every room). Returns how many were deleted. Run it now and then
    /// (the engine does, every [`Auth::GUEST_PRUNE_INTERVAL`]).
    pub async fn prune_guests(&self, now: Timestamp) -> Result<usize> {
        // A second more than the token lives, so the last moment it passes is behind us.
        let age = self.inner.tokens.access_valid_secs().saturating_add(1);
        Ok(self
            .inner
            .store
            .prune_guests(now.plus_seconds(-age))
            .await?)
    }

    /// How often the engine clears away stale guests.
    pub const GUEST_PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);

    /// Forgets revocations of tokens that have expired anyway; run it now and then.
    pub async fn prune_revocations(&self) -> Result<usize> {
        Ok(self.inner.store.prune_revoked(Timestamp::now()).await?)
    }
}
