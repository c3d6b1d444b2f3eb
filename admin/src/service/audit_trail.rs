//! Reading, verifying and sealing the audit trail.

use super::authz::Actor;
use super::{Service, ServiceError};
use crate::audit::{
    AuditQuery, AuditRecord, AuditResult, Checkpoint, MIN_RETENTION_DAYS, VerifyReport, verify,
};
use crate::storage::StorageError;
use futures::stream::BoxStream;

impl Service {
    /// Walks the whole chain from one snapshot; the report names the first broken record.
    pub async fn verify_audit(&self) -> Result<VerifyReport, ServiceError> {
        Ok(verify(&self.audit_key, self.storage.audit_chain()).await?)
    }

    pub fn audit_records(
        &self,
        query: AuditQuery,
    ) -> BoxStream<'static, Result<AuditRecord, StorageError>> {
        self.storage.audit_records(query)
    }

    /// The retention job: records older than `retention_days` (at least 180) are sealed by a
    /// checkpoint record and deleted. Returns the checkpoint and how many were deleted, or
    /// `None` when nothing is old enough.
    pub async fn seal_audit(
        &self,
        retention_days: u32,
        by: &Actor,
    ) -> Result<Option<(Checkpoint, u64)>, ServiceError> {
        if retention_days < MIN_RETENTION_DAYS {
            return Err(ServiceError::InvalidInput(format!(
                "audit records are kept at least {MIN_RETENTION_DAYS} days, not {retention_days}"
            )));
        }
        let now = self.clock.now();
        let cutoff = now - time::Duration::days(i64::from(retention_days));
        let entry = by
            .entry(now, "audit.seal", AuditResult::Success)
            .target("audit")
            .detail("retention_days", retention_days)
            .detail("cutoff", crate::clock::shanghai_rfc3339(cutoff));
        let sealed = self
            .storage
            .seal_audit(cutoff, entry, &self.audit_key)
            .await?;
        if let Some((checkpoint, deleted)) = &sealed {
            tracing::info!(
                sealed_through = checkpoint.sealed_through,
                deleted,
                "audit records past retention sealed and deleted"
            );
        }
        Ok(sealed)
    }
}
