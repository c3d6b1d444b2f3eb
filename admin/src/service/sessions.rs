//! The token API: sessions created over mutual TLS, and the check every token request passes.
//!
//! The check runs in the application on every session creation and every request, by the
//! SHA-256 of the client certificate's key: TLS 1.3 resumption copies the client chain without
//! re-checking anything, and a pooled connection outlives a status change, so the TLS layer
//! alone would let a suspended or revoked token through.

use super::{Service, ServiceError};
use crate::audit::{AuditEntry, AuditResult};
use crate::domain::{LoginKind, LoginOutcome, LoginWrite, NewSession, Session};
use crate::storage::Credential;
use std::net::SocketAddr;
use std::sync::Arc;
use ukey_certs::{ClientIdentity, IdentityError};
use ukey_proto::api::{Refusal, SessionInfo, UnitRef};
use ukey_proto::{Lang, SpkiFingerprint, TokenSerial};
use uuid::Uuid;

/// The client certificate of a connection, read once when the connection is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub fingerprint: SpkiFingerprint,
    /// The token the certificate claims to be (its `urn:ukey:token:` URI), when it is shaped
    /// like a token certificate; recorded with refusals of unknown certificates.
    pub claimed_serial: Option<TokenSerial>,
}

impl Peer {
    pub fn from_der(der: &[u8]) -> Result<Arc<Peer>, IdentityError> {
        // One parse for a token-shaped certificate; any other still has a key to record.
        let peer = match ClientIdentity::from_der(der) {
            Ok(identity) => Peer {
                fingerprint: identity.fingerprint(),
                claimed_serial: Some(identity.token),
            },
            Err(_) => Peer {
                fingerprint: ukey_certs::spki_fingerprint(der)?,
                claimed_serial: None,
            },
        };
        Ok(Arc::new(peer))
    }
}

/// What the service knows about a request besides its body.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub peer: Option<Arc<Peer>>,
    pub source: Option<SocketAddr>,
    pub lang: Lang,
    pub client_version: Option<String>,
}

/// A token that passed the check: active, bound to an active unit, certificate in validity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAuth {
    pub token_id: i64,
    pub serial: TokenSerial,
    pub unit_id: i64,
    pub unit: UnitRef,
}

/// Longest client version string kept.
const MAX_CLIENT_VERSION: usize = 100;

impl Service {
    /// Checks the token behind the request; a refusal is recorded (kind `kind`) before it is
    /// returned. A request without a client certificate is refused without a record: it names
    /// no token, and recording it would let anyone fill the table.
    pub async fn check_token(
        &self,
        ctx: &RequestContext,
        kind: LoginKind,
        in_session: Option<Uuid>,
    ) -> Result<TokenAuth, ServiceError> {
        let Some(peer) = &ctx.peer else {
            return Err(ServiceError::Refused(Refusal::NoClientCertificate));
        };
        let now = self.clock.now();
        let credential = self.storage.credential(&peer.fingerprint).await?;
        match verdict(credential.as_ref(), now) {
            Ok(auth) => Ok(auth),
            Err(refusal) => {
                let span = tracing::info_span!(
                    "refused",
                    token = credential
                        .as_ref()
                        .map(|c| c.serial.as_str())
                        .unwrap_or("-"),
                    unit = credential
                        .as_ref()
                        .and_then(|c| c.unit.as_ref())
                        .map(|u| u.code.as_str())
                        .unwrap_or("-"),
                );
                let _entered = span.enter();
                tracing::info!(reason = refusal.code(), kind = kind.code(), "token refused");
                self.logins
                    .write(LoginWrite {
                        at: now,
                        kind,
                        outcome: LoginOutcome::Refused(refusal),
                        token_id: credential.as_ref().map(|c| c.token_id),
                        unit_id: credential
                            .as_ref()
                            .and_then(|c| c.unit.as_ref())
                            .map(|u| u.id),
                        fingerprint: Some(peer.fingerprint),
                        claimed_serial: peer.claimed_serial.as_ref().map(|s| s.to_string()),
                        source: ctx.source,
                        client_version: clean_version(ctx.client_version.as_deref()),
                        session: None,
                        in_session,
                    })
                    .await?;
                Err(ServiceError::Refused(refusal))
            }
        }
    }

    /// `POST /api/v1/sessions`: checks the token, writes the login record and the session
    /// durably, and only then answers.
    pub async fn create_session(&self, ctx: &RequestContext) -> Result<SessionInfo, ServiceError> {
        let auth = self.check_token(ctx, LoginKind::Login, None).await?;
        let now = self.clock.now();
        let ttl = time::Duration::try_from(self.settings.ttl)
            .map_err(|e| ServiceError::InvalidInput(format!("session ttl: {e}")))?;
        let session = NewSession {
            id: Uuid::now_v7(),
            expires_at: now + ttl,
        };
        let span = tracing::info_span!("login", token = %auth.serial, unit = %auth.unit.code);
        let _entered = span.enter();
        self.logins
            .write(LoginWrite {
                at: now,
                kind: LoginKind::Login,
                outcome: LoginOutcome::Success,
                token_id: Some(auth.token_id),
                unit_id: Some(auth.unit_id),
                fingerprint: ctx.peer.as_ref().map(|p| p.fingerprint),
                claimed_serial: None,
                source: ctx.source,
                client_version: clean_version(ctx.client_version.as_deref()),
                session: Some(session.clone()),
                in_session: None,
            })
            .await?;
        tracing::info!(session = %session.id, "session created");
        Ok(SessionInfo {
            session_id: session.id,
            unit: auth.unit,
            token_serial: auth.serial,
            created_at: now,
            expires_at: session.expires_at,
        })
    }

    /// `GET /api/v1/me`: the session, if it is live and belongs to the requesting token.
    pub async fn current_session(
        &self,
        ctx: &RequestContext,
        session_id: Option<Uuid>,
    ) -> Result<SessionInfo, ServiceError> {
        let (auth, session) = self.check_session(ctx, session_id).await?;
        Ok(SessionInfo {
            session_id: session.id,
            unit: auth.unit,
            token_serial: auth.serial,
            created_at: session.created_at,
            expires_at: session.expires_at,
        })
    }

    /// `DELETE /api/v1/sessions/{id}`: logout.
    pub async fn end_session(&self, ctx: &RequestContext, id: Uuid) -> Result<(), ServiceError> {
        let (auth, session) = self.check_session(ctx, Some(id)).await?;
        let now = self.clock.now();
        let mut entry = AuditEntry::new(
            now,
            &format!("token:{}", auth.serial),
            "token.logout",
            AuditResult::Success,
        )
        .target(format!("unit:{}", auth.unit.code))
        .unit(Some(&auth.unit.code))
        .detail("session", session.id.to_string());
        entry.source = ctx.source.map(|s| s.to_string());
        self.storage
            .end_session(session.id, now, self.audited(entry))
            .await?;
        tracing::info!(token = %auth.serial, unit = %auth.unit.code, session = %id, "session ended");
        Ok(())
    }

    /// The token check, then the session check: the session must exist, be live and belong to
    /// this token. A session that fails is refused (and recorded) as ended.
    async fn check_session(
        &self,
        ctx: &RequestContext,
        session_id: Option<Uuid>,
    ) -> Result<(TokenAuth, Session), ServiceError> {
        let session = match session_id {
            Some(id) => self.storage.session(id).await?,
            None => None,
        };
        let known = session.as_ref().map(|s| s.id);
        let auth = self.check_token(ctx, LoginKind::Request, known).await?;
        match session {
            Some(s) if s.token_id == auth.token_id && s.is_live(self.clock.now()) => Ok((auth, s)),
            _ => {
                self.logins
                    .write(LoginWrite {
                        at: self.clock.now(),
                        kind: LoginKind::Request,
                        outcome: LoginOutcome::Refused(Refusal::SessionEnded),
                        token_id: Some(auth.token_id),
                        unit_id: Some(auth.unit_id),
                        fingerprint: ctx.peer.as_ref().map(|p| p.fingerprint),
                        claimed_serial: None,
                        source: ctx.source,
                        client_version: clean_version(ctx.client_version.as_deref()),
                        session: None,
                        in_session: known,
                    })
                    .await?;
                Err(ServiceError::Refused(Refusal::SessionEnded))
            }
        }
    }
}

/// The rules, in the order a user is told about them: the token's status first (a revoked
/// token is revoked, whatever else), then the certificate's validity, then the binding.
fn verdict(
    credential: Option<&Credential>,
    now: time::OffsetDateTime,
) -> Result<TokenAuth, Refusal> {
    let c = credential.ok_or(Refusal::UnknownCertificate)?;
    if let Some(refusal) = c.status.refusal() {
        return Err(refusal);
    }
    if now < c.not_before || now >= c.not_after {
        return Err(Refusal::CertificateExpired);
    }
    let unit = c.unit.as_ref().ok_or(Refusal::NotBound)?;
    if !unit.active {
        return Err(Refusal::UnitInactive);
    }
    Ok(TokenAuth {
        token_id: c.token_id,
        serial: c.serial.clone(),
        unit_id: unit.id,
        unit: UnitRef {
            code: unit.code.clone(),
            name: unit.name.clone(),
        },
    })
}

/// Keeps a client version printable and short: it comes from the client.
fn clean_version(v: Option<&str>) -> Option<String> {
    let v: String = v?
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_CLIENT_VERSION)
        .collect();
    (!v.is_empty()).then_some(v)
}
