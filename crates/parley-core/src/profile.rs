//! A user's own account (issue 15): the profile they edit, their password, deleting the
//! account. The rules of each check are in `parley-auth` ([`Auth::update_profile`],
//! [`Auth::change_password`], [`Auth::confirm_deletion`]); here is what follows them:
//!
//! - A profile change reaches the user's open sockets on every process (a `parley.profile`
//!   event on their user group): the messages they send from then on carry the new display
//!   name, taken from the socket's session, so sending costs no query for it.
//! - A password change refuses every token issued before (the token epoch is raised) and
//!   closes every socket of the user except those of the caller's own login (4004, signed
//!   out); the caller's login goes on with the fresh token pair returned, in the same family.
//! - Deleting one's own account is the staff deletion ([`Engine::delete_account`]'s effect):
//!   renamed `deleted.{id}`, messages kept, every token refused at once, sockets closed with
//!   4005 on every process; recorded in the audit log as done by the user themselves.
//!
//! [`Auth::update_profile`]: parley_auth::Auth::update_profile
//! [`Auth::change_password`]: parley_auth::Auth::change_password
//! [`Auth::confirm_deletion`]: parley_auth::Auth::confirm_deletion

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::events;
use parley_auth::{Auth, Claims, LoginResponse, Password};
use parley_domain::{AuditAction, AuditTarget, User};

impl Engine {
    fn auth(&self, what: &str) -> Result<&Auth> {
        self.inner
            .auth
            .get()
            .ok_or_else(|| EngineError::Config(format!("Engine::{what} needs Engine::use_auth")))
    }

    /// Changes `user`'s display name and/or e-mail (see [`Auth::update_profile`] for the
    /// rules) and tells their open sockets on every process. Returns the updated account.
    pub async fn update_profile(
        &self,
        user: &User,
        display_name: Option<Option<&str>>,
        email: Option<Option<&str>>,
    ) -> Result<User> {
        let auth = self.auth("update_profile")?;
        let updated = auth.update_profile(user, display_name, email).await?;
        if updated.display_name != user.display_name {
            self.inner
                .layer
                .group_send(
                    &self.inner.groups.user(user.id)?,
                    events::profile(updated.display_name.as_ref()),
                )
                .await?;
        }
        Ok(updated)
    }

    /// Changes `user`'s own password (see [`Auth::change_password`]) and closes every socket
    /// of theirs but those of the caller's login (`claims.family`), on every process.
    pub async fn change_password(
        &self,
        user: &User,
        claims: &Claims,
        current: &Password,
        new: &Password,
    ) -> Result<LoginResponse> {
        let auth = self.auth("change_password")?;
        let fresh = auth
            .change_password(user, &claims.family, current, new)
            .await?;
        self.inner
            .layer
            .group_send(
                &self.inner.groups.user(user.id)?,
                events::sign_out_except(&claims.family),
            )
            .await?;
        Ok(fresh)
    }

    /// Deletes `user`'s own account once [`Auth::confirm_deletion`] accepts the proof: the
    /// same deletion staff make, recorded as the user's own. Returns what is left of it.
    pub async fn delete_own_account(
        &self,
        user: &User,
        claims: &Claims,
        password: Option<&Password>,
    ) -> Result<User> {
        let auth = self.auth("delete_own_account")?;
        auth.confirm_deletion(user, claims, password).await?;
        let gone = self.inner.store.erase_user(user.id).await?;
        self.close_disabled(user.id).await?;
        self.audit(
            user,
            AuditAction::DeleteUser,
            AuditTarget::user(&user.username),
            None,
        )
        .await?;
        tracing::info!(user = %user.username, id = %user.id, "deleted own account");
        Ok(gone)
    }
}

/// A user's own account as `GET /api/me` shows it: the account's fields, and the external
/// sign-ins linked to it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OwnAccount {
    /// The account (its fields at the top level, as `GET /api/me` always answered).
    #[serde(flatten)]
    pub user: User,
    /// The external (OpenID Connect) sign-ins linked to it, oldest first; empty for none.
    pub identities: Vec<OwnSignIn>,
}

/// An external sign-in linked to one's account: which provider, since when (no secrets, no
/// provider-side id).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OwnSignIn {
    /// The provider's issuer URL (e.g. `https://accounts.google.com`).
    pub issuer: String,
    /// When it was linked (the first sign-in with it).
    pub linked_at: parley_domain::Timestamp,
}

impl Engine {
    /// `user`'s own account with its linked sign-ins.
    pub async fn own_account(&self, user: User) -> Result<OwnAccount> {
        let identities = self
            .inner
            .store
            .linked_identities(user.id)
            .await?
            .into_iter()
            .map(|l| OwnSignIn {
                issuer: l.issuer,
                linked_at: l.linked_at,
            })
            .collect();
        Ok(OwnAccount { user, identities })
    }
}
