//! Managing units, administrators and tokens. Today the CLI calls these directly on the
//! database; the management API (with operators, roles and the audit trail) will call the
//! same functions, so every rule lives here once.

use super::{Service, ServiceError};
use crate::domain::unit::clean_name;
use crate::domain::{
    Actor, Administrator, LoginRecord, Mobile, NewAdministrator, NewToken, NewUnit, Token,
    TokenChange, TokenEvent, TokenState, Unit, UnitKind,
};
use crate::storage::{LoginQuery, StorageError, TokenFilter};
use futures::stream::BoxStream;
use time::OffsetDateTime;
use ukey_certs::ClientIdentity;
use ukey_proto::{TokenSerial, UnitCode};

/// Longest reason accepted for a change.
const MAX_REASON_CHARS: usize = 500;

/// A token to register from its certificate.
#[derive(Debug, Clone)]
pub struct TokenRegistration {
    pub serial: TokenSerial,
    /// The certificate, PEM or DER.
    pub certificate: Vec<u8>,
    pub unit: Option<UnitCode>,
    pub model: Option<String>,
    pub manufacturer: Option<String>,
}

fn reason(r: &str) -> Result<String, ServiceError> {
    let r = r.trim();
    if r.is_empty() {
        return Err(ServiceError::MissingReason);
    }
    if r.chars().count() > MAX_REASON_CHARS || r.chars().any(char::is_control) {
        return Err(ServiceError::InvalidInput(format!(
            "a reason is at most {MAX_REASON_CHARS} characters on one line"
        )));
    }
    Ok(r.to_owned())
}

fn optional_text(what: &str, v: Option<String>) -> Result<Option<String>, ServiceError> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => clean_name(s)
            .map(Some)
            .map_err(|e| ServiceError::InvalidInput(format!("{what}: {e}"))),
    }
}

impl Service {
    pub async fn add_unit(&self, unit: NewUnit) -> Result<Unit, ServiceError> {
        let unit = NewUnit {
            name: clean_name(&unit.name)
                .map_err(|e| ServiceError::InvalidInput(format!("unit name: {e}")))?,
            short_name: optional_text("short name", unit.short_name)?,
            contact_name: optional_text("contact", unit.contact_name)?,
            contact_phone: optional_text("contact phone", unit.contact_phone)?,
            ..unit
        };
        let created = self.storage.insert_unit(&unit, self.clock.now()).await?;
        tracing::info!(unit = %created.code, name = %created.name, "unit added");
        Ok(created)
    }

    pub async fn unit(&self, code: &UnitCode) -> Result<Unit, ServiceError> {
        self.storage
            .unit(code)
            .await?
            .ok_or_else(|| ServiceError::Storage(StorageError::UnknownUnit(code.clone())))
    }

    /// Units as a tree (parents first, siblings by code).
    pub async fn units(&self, under: Option<&UnitCode>) -> Result<Vec<Unit>, ServiceError> {
        let mut units = self.storage.units(under).await?;
        crate::domain::unit::sort_as_tree(&mut units);
        Ok(units)
    }

    pub async fn move_unit(
        &self,
        code: &UnitCode,
        parent: Option<&UnitCode>,
    ) -> Result<Unit, ServiceError> {
        let moved = self
            .storage
            .move_unit(code, parent, self.clock.now())
            .await?;
        tracing::info!(unit = %code, parent = ?parent.map(UnitCode::as_str), "unit moved");
        Ok(moved)
    }

    pub async fn set_unit_active(
        &self,
        code: &UnitCode,
        active: bool,
    ) -> Result<Unit, ServiceError> {
        let unit = self
            .storage
            .set_unit_active(code, active, self.clock.now())
            .await?;
        tracing::info!(unit = %code, active, "unit activity changed");
        Ok(unit)
    }

    /// Stores an import plan that has already been checked (see [`crate::import`]): all of it,
    /// or nothing.
    pub async fn import(
        &self,
        units: &[NewUnit],
        admins: &[NewAdministrator],
    ) -> Result<(), ServiceError> {
        self.storage.import(units, admins, self.clock.now()).await?;
        tracing::info!(
            units = units.len(),
            administrators = admins.len(),
            "import stored"
        );
        Ok(())
    }

    pub async fn add_administrator(
        &self,
        unit: UnitCode,
        name: &str,
        mobile: &str,
    ) -> Result<Administrator, ServiceError> {
        let admin = NewAdministrator {
            unit,
            name: clean_name(name)
                .map_err(|e| ServiceError::InvalidInput(format!("administrator name: {e}")))?,
            mobile: Mobile::parse(mobile).map_err(|e| ServiceError::InvalidInput(e.to_string()))?,
        };
        let added = self
            .storage
            .insert_administrator(&admin, self.clock.now())
            .await?;
        tracing::info!(unit = %added.unit_code, "administrator added");
        Ok(added)
    }

    pub async fn administrators(
        &self,
        under: Option<&UnitCode>,
    ) -> Result<Vec<Administrator>, ServiceError> {
        Ok(self.storage.administrators(under).await?)
    }

    /// Registers a token from its certificate. The certificate must be shaped like a token
    /// certificate and name this serial (and this unit, when one is given): a mismatch is
    /// almost always the wrong file.
    pub async fn register_token(
        &self,
        registration: TokenRegistration,
        reason_text: &str,
        actor: &Actor,
    ) -> Result<Token, ServiceError> {
        let why = reason(reason_text)?;
        let identity = ClientIdentity::from_pem_or_der(&registration.certificate)?;
        if identity.token != registration.serial {
            return Err(ServiceError::CertificateMismatch {
                what: "token",
                named: identity.token.to_string(),
                given: registration.serial.to_string(),
            });
        }
        if let Some(unit) = &registration.unit
            && *unit != identity.unit
        {
            return Err(ServiceError::CertificateMismatch {
                what: "unit",
                named: identity.unit.to_string(),
                given: unit.to_string(),
            });
        }
        let der = ukey_certs::decode_pem_or_der(&registration.certificate, "CERTIFICATE")
            .map_err(|e| ServiceError::InvalidInput(format!("certificate: {e}")))?;
        let new = NewToken {
            serial: registration.serial,
            model: optional_text("model", registration.model)?,
            manufacturer: optional_text("manufacturer", registration.manufacturer)?,
            cert_der: der,
            fingerprint: identity.fingerprint(),
            cert_serial: identity.serial().to_hex(),
            not_before: identity.certificate.not_before,
            not_after: identity.certificate.not_after,
        };
        let token = self
            .storage
            .register_token(
                &new,
                registration.unit.as_ref(),
                actor,
                &why,
                self.clock.now(),
            )
            .await?;
        tracing::info!(token = %token.serial, unit = ?token.unit_code.as_ref().map(UnitCode::as_str), status = %token.status, "token registered");
        Ok(token)
    }

    pub async fn change_token(
        &self,
        serial: &TokenSerial,
        change: &TokenChange,
        reason_text: &str,
        actor: &Actor,
    ) -> Result<Token, ServiceError> {
        let why = reason(reason_text)?;
        let token = self
            .storage
            .change_token(serial, change, actor, &why, self.clock.now())
            .await?;
        tracing::info!(token = %serial, unit = ?token.unit_code.as_ref().map(UnitCode::as_str), status = %token.status, change = ?change, "token changed");
        Ok(token)
    }

    pub async fn token(&self, serial: &TokenSerial) -> Result<Token, ServiceError> {
        self.storage
            .token(serial)
            .await?
            .ok_or_else(|| ServiceError::Storage(StorageError::UnknownToken(serial.clone())))
    }

    pub async fn tokens(&self, filter: &TokenFilter) -> Result<Vec<Token>, ServiceError> {
        Ok(self.storage.tokens(filter).await?)
    }

    pub async fn token_history(
        &self,
        serial: &TokenSerial,
    ) -> Result<Vec<TokenEvent>, ServiceError> {
        Ok(self.storage.token_history(serial).await?)
    }

    pub async fn token_states_at(
        &self,
        at: OffsetDateTime,
        under: Option<&UnitCode>,
    ) -> Result<Vec<TokenState>, ServiceError> {
        Ok(self.storage.token_states_at(at, under).await?)
    }

    pub fn logins(
        &self,
        query: LoginQuery,
    ) -> BoxStream<'static, Result<LoginRecord, StorageError>> {
        self.storage.logins(query)
    }
}

/// A unit kind given on the command line or in a file: its code or Chinese label.
pub fn parse_kind(s: &str) -> Result<UnitKind, ServiceError> {
    UnitKind::parse(s).ok_or_else(|| {
        ServiceError::InvalidInput(format!(
            "unknown unit kind {s:?}; use one of 党委, 党工委, 党总支, 党支部, 党组, 其他"
        ))
    })
}
