//! The refresh-token blacklist: revoked `jti`s (and token-family ids) until they expire.

use crate::error::Result;
use crate::schema::revoked_tokens;
use crate::store::{Store, with_conn};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use parley_domain::Timestamp;

impl Store {
    /// Revokes `jti` until `expires_at` (when the token would have expired anyway). Returns
    /// true if this call revoked it, false if it already was: refresh rotation relies on that
    /// to let exactly one of two racing refreshes with the same token win.
    pub async fn revoke_token(&self, jti: &str, expires_at: Timestamp) -> Result<bool> {
        let n = with_conn!(
            self,
            write | conn | {
                diesel::insert_into(revoked_tokens::table)
                    .values((
                        revoked_tokens::jti.eq(jti),
                        revoked_tokens::expires_at.eq(expires_at.millis()),
                    ))
                    .on_conflict_do_nothing()
                    .execute(conn)
                    .await?
            }
        );
        Ok(n == 1)
    }

    /// Whether `jti` is revoked.
    pub async fn is_revoked(&self, jti: &str) -> Result<bool> {
        self.any_revoked(&[jti]).await
    }

    /// Whether any of `ids` (e.g. a token's `jti` and its family id) is revoked. One query.
    pub async fn any_revoked(&self, ids: &[&str]) -> Result<bool> {
        let n: i64 = with_conn!(self, |conn| {
            revoked_tokens::table
                .filter(revoked_tokens::jti.eq_any(ids))
                .count()
                .get_result(conn)
                .await?
        });
        Ok(n > 0)
    }

    /// Forgets revocations that expired before `now` (those tokens fail on expiry alone).
    /// Returns how many were removed.
    pub async fn prune_revoked(&self, now: Timestamp) -> Result<usize> {
        let n = with_conn!(
            self,
            write | conn | {
                diesel::delete(
                    revoked_tokens::table.filter(revoked_tokens::expires_at.lt(now.millis())),
                )
                .execute(conn)
                .await?
            }
        );
        Ok(n)
    }
}
