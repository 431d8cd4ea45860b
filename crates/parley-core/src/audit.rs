//! The audit log: every staff and room-owner action is recorded here, by the engine method
//! that performs it, after it took effect; staff read the log back ([`Engine::audit_log`]).

use crate::engine::{Engine, require_staff};
use crate::error::Result;
use parley_domain::{AuditAction, AuditEntry, AuditTarget, Reason, User};
use parley_store::{AuditQuery, NewAuditEntry};

/// The most entries one page of the audit log returns, and the default page size.
pub const AUDIT_PAGE_MAX: i64 = 200;

impl Engine {
    /// Records that `actor` did `action` to `target` (staff and owner actions only; call it
    /// once the action has taken effect). Also logged at `info`.
    pub(crate) async fn audit(
        &self,
        actor: &User,
        action: AuditAction,
        target: AuditTarget,
        reason: Option<&Reason>,
    ) -> Result<AuditEntry> {
        let entry = self
            .inner
            .store
            .record_audit(&NewAuditEntry {
                actor,
                action,
                target,
                reason,
            })
            .await?;
        tracing::info!(
            actor = %entry.actor,
            action = entry.action.as_str(),
            user = entry.target.user.as_ref().map(|u| u.as_str()),
            room = entry.target.room.as_ref().map(|r| r.as_str()),
            detail = entry.target.detail.as_deref(),
            "audit"
        );
        Ok(entry)
    }

    /// A page of the audit log, newest first (staff only; `forbidden` otherwise). The page
    /// size is clamped to 1..=[`AUDIT_PAGE_MAX`].
    pub async fn audit_log(&self, staff: &User, mut query: AuditQuery) -> Result<Vec<AuditEntry>> {
        require_staff(staff)?;
        query.limit = if query.limit <= 0 {
            AUDIT_PAGE_MAX
        } else {
            query.limit.min(AUDIT_PAGE_MAX)
        };
        Ok(self.inner.store.audit_page(&query).await?)
    }
}
