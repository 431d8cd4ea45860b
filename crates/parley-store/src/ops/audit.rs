//! The audit log: appending staff and owner actions, and reading them back newest first.

use crate::error::{Result, StoreError};
use crate::schema::audit_log;
use crate::store::{Store, with_conn};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use parley_domain::{
    AuditAction, AuditEntry, AuditTarget, Reason, RoomName, Timestamp, User, UserId, UserName,
};

/// An action to record.
#[derive(Debug, Clone)]
pub struct NewAuditEntry<'a> {
    /// Who acted.
    pub actor: &'a User,
    /// What they did.
    pub action: AuditAction,
    /// To whom or what.
    pub target: AuditTarget,
    /// Why, if they said.
    pub reason: Option<&'a Reason>,
}

/// A page of the audit log, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only actions by this user name.
    pub actor: Option<UserName>,
    /// Only actions on this user name.
    pub target_user: Option<UserName>,
    /// Only actions on this room.
    pub target_room: Option<RoomName>,
    /// Only entries older than this id (the previous page's last id).
    pub before: Option<i64>,
    /// At most this many entries.
    pub limit: i64,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_log)]
struct AuditRow {
    id: i64,
    actor_id: Option<i64>,
    actor_name: String,
    action: String,
    target_user: Option<String>,
    target_room: Option<String>,
    detail: Option<String>,
    reason: Option<String>,
    created_at: i64,
}

impl AuditRow {
    fn into_entry(self) -> Result<AuditEntry> {
        let corrupt = |what: &str, e: parley_domain::DomainError| StoreError::corrupt(what, e);
        Ok(AuditEntry {
            id: self.id,
            actor_id: self.actor_id.map(UserId),
            actor: UserName::parse(&self.actor_name).map_err(|e| corrupt("audit actor", e))?,
            action: AuditAction::parse(&self.action)
                .ok_or_else(|| StoreError::corrupt("audit action", &self.action))?,
            target: AuditTarget {
                user: (self.target_user.as_deref())
                    .map(UserName::parse)
                    .transpose()
                    .map_err(|e| corrupt("audit target user", e))?,
                room: (self.target_room.as_deref())
                    .map(RoomName::parse)
                    .transpose()
                    .map_err(|e| corrupt("audit target room", e))?,
                detail: self.detail,
            },
            reason: (self.reason.as_deref())
                .map(Reason::parse)
                .transpose()
                .map_err(|e| corrupt("audit reason", e))?,
            at: Timestamp(self.created_at),
        })
    }
}

impl Store {
    /// Appends `entry` to the audit log and returns it as stored.
    pub async fn record_audit(&self, entry: &NewAuditEntry<'_>) -> Result<AuditEntry> {
        self.insert_audit(
            Some(entry.actor.id),
            &entry.actor.username,
            entry.action,
            &entry.target,
            entry.reason,
        )
        .await
    }

    /// Appends an action no account did (the operator's command line): recorded with no
    /// actor id and `actor` as the actor's name.
    pub async fn record_audit_unattributed(
        &self,
        actor: &UserName,
        action: AuditAction,
        target: &AuditTarget,
        reason: Option<&Reason>,
    ) -> Result<AuditEntry> {
        self.insert_audit(None, actor, action, target, reason).await
    }

    async fn insert_audit(
        &self,
        actor_id: Option<UserId>,
        actor: &UserName,
        action: AuditAction,
        target: &AuditTarget,
        reason: Option<&Reason>,
    ) -> Result<AuditEntry> {
        let now = Timestamp::now().millis();
        let row: AuditRow = with_conn!(
            self,
            write | conn | {
                diesel::insert_into(audit_log::table)
                    .values((
                        audit_log::actor_id.eq(actor_id.map(UserId::get)),
                        audit_log::actor_name.eq(actor.as_str()),
                        audit_log::action.eq(action.as_str()),
                        audit_log::target_user.eq(target.user.as_ref().map(UserName::as_str)),
                        audit_log::target_room.eq(target.room.as_ref().map(RoomName::as_str)),
                        audit_log::detail.eq(target.detail.as_deref()),
                        audit_log::reason.eq(reason.map(Reason::as_str)),
                        audit_log::created_at.eq(now),
                    ))
                    .returning(AuditRow::as_returning())
                    .get_result(conn)
                    .await?
            }
        );
        row.into_entry()
    }

    /// A page of the audit log, newest first, filtered as `query` says.
    pub async fn audit_page(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        let rows: Vec<AuditRow> = with_conn!(self, |conn| {
            let mut q = audit_log::table
                .select(AuditRow::as_select())
                .order(audit_log::id.desc())
                .limit(query.limit.max(0))
                .into_boxed();
            if let Some(actor) = &query.actor {
                q = q.filter(audit_log::actor_name.eq(actor.as_str()));
            }
            if let Some(user) = &query.target_user {
                q = q.filter(audit_log::target_user.eq(user.as_str()));
            }
            if let Some(room) = &query.target_room {
                q = q.filter(audit_log::target_room.eq(room.as_str()));
            }
            if let Some(before) = query.before {
                q = q.filter(audit_log::id.lt(before));
            }
            q.load(conn).await?
        });
        rows.into_iter().map(AuditRow::into_entry).collect()
    }
}
