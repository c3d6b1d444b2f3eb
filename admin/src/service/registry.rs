//! Managing units, administrators and tokens: the CLI (directly on the database) and the
//! management API (after authorization) call the same functions, so every rule lives here
//! once. Every change is written with its audit record in one transaction, naming the actor.

use super::authz::{Action, Actor, actions};
use super::{Service, ServiceError};
use crate::audit::{AuditEntry, AuditResult};
use crate::domain::unit::clean_name;
use crate::domain::{
    Administrator, LoginRecord, Mobile, NewAdministrator, NewToken, NewUnit, Token, TokenChange,
    TokenEvent, TokenState, Unit, UnitKind,
};
use crate::storage::{LoginPageQuery, LoginQuery, StorageError, TokenFilter, UnitUpdate};
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
    fn entry(&self, by: &Actor, action: &Action, target: String) -> AuditEntry {
        by.entry(self.clock.now(), action.code, AuditResult::Success)
            .target(target)
    }

    pub async fn add_unit(&self, unit: NewUnit, by: &Actor) -> Result<Unit, ServiceError> {
        let mut entry = self.entry(by, &actions::UNIT_CREATE, format!("unit:{}", unit.code));
        // Recorded under the parent: the unit does not exist yet when the attempt fails.
        entry.unit = unit.parent.clone().or_else(|| Some(unit.code.clone()));
        let result = async {
            let unit = NewUnit {
                name: clean_name(&unit.name)
                    .map_err(|e| ServiceError::InvalidInput(format!("unit name: {e}")))?,
                short_name: optional_text("short name", unit.short_name)?,
                contact_name: optional_text("contact", unit.contact_name)?,
                contact_phone: optional_text("contact phone", unit.contact_phone)?,
                ..unit
            };
            let created = self
                .storage
                .insert_unit(&unit, self.clock.now(), self.audited(entry.clone()))
                .await?;
            tracing::info!(unit = %created.code, name = %created.name, by = %by.name, "unit added");
            Ok(created)
        }
        .await;
        self.finish(entry, result).await
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
        by: &Actor,
    ) -> Result<Unit, ServiceError> {
        let entry = self
            .entry(by, &actions::UNIT_MOVE, format!("unit:{code}"))
            .unit(Some(code));
        let result = self
            .storage
            .move_unit(code, parent, self.clock.now(), self.audited(entry.clone()))
            .await
            .map_err(ServiceError::from);
        if result.is_ok() {
            tracing::info!(unit = %code, parent = ?parent.map(UnitCode::as_str), by = %by.name, "unit moved");
        }
        self.finish(entry, result).await
    }

    pub async fn set_unit_active(
        &self,
        code: &UnitCode,
        active: bool,
        by: &Actor,
    ) -> Result<Unit, ServiceError> {
        let update = UnitUpdate {
            active: Some(active),
            ..UnitUpdate::default()
        };
        self.update_unit(code, update, by).await
    }

    /// Changes a unit's fields (not its code; its place by [`Service::move_unit`]).
    pub async fn update_unit(
        &self,
        code: &UnitCode,
        update: UnitUpdate,
        by: &Actor,
    ) -> Result<Unit, ServiceError> {
        let entry = self
            .entry(by, &actions::UNIT_UPDATE, format!("unit:{code}"))
            .unit(Some(code));
        let result = async {
            let clean = |what: &str, v: Option<Option<String>>| match v {
                None => Ok(None),
                Some(v) => optional_text(what, v).map(Some),
            };
            let update = UnitUpdate {
                name: update
                    .name
                    .map(|n| {
                        clean_name(&n)
                            .map_err(|e| ServiceError::InvalidInput(format!("unit name: {e}")))
                    })
                    .transpose()?,
                short_name: clean("short name", update.short_name)?,
                contact_name: clean("contact", update.contact_name)?,
                contact_phone: clean("contact phone", update.contact_phone)?,
                ..update
            };
            let unit = self
                .storage
                .update_unit(code, &update, self.clock.now(), self.audited(entry.clone()))
                .await?;
            tracing::info!(unit = %code, by = %by.name, "unit changed");
            Ok(unit)
        }
        .await;
        self.finish(entry, result).await
    }

    /// Deletes a unit nothing refers to (a unit with history is deactivated instead).
    pub async fn delete_unit(&self, code: &UnitCode, by: &Actor) -> Result<(), ServiceError> {
        let entry = self
            .entry(by, &actions::UNIT_DELETE, format!("unit:{code}"))
            .unit(Some(code));
        let result = self
            .storage
            .delete_unit(code, self.audited(entry.clone()))
            .await
            .map_err(ServiceError::from);
        if result.is_ok() {
            tracing::info!(unit = %code, by = %by.name, "unit deleted");
        }
        self.finish(entry, result).await
    }

    /// Stores an import plan that has already been checked (see [`crate::import`]): all of it,
    /// or nothing. `under` is the unit the import concerns (for the audit record).
    pub async fn import(
        &self,
        units: &[NewUnit],
        admins: &[NewAdministrator],
        under: Option<&UnitCode>,
        by: &Actor,
    ) -> Result<(), ServiceError> {
        let entry = self
            .entry(
                by,
                &actions::UNITS_IMPORT,
                under.map_or("units".to_owned(), |u| format!("unit:{u}")),
            )
            .unit(under)
            .detail("units", units.len())
            .detail("administrators", admins.len())
            .detail(
                "unit_codes",
                units
                    .iter()
                    .map(|u| u.code.as_str().to_owned())
                    .collect::<Vec<_>>(),
            );
        let result = self
            .storage
            .import(units, admins, self.clock.now(), self.audited(entry.clone()))
            .await
            .map_err(ServiceError::from);
        if result.is_ok() {
            tracing::info!(
                units = units.len(),
                administrators = admins.len(),
                by = %by.name,
                "import stored"
            );
        }
        self.finish(entry, result).await
    }

    pub async fn add_administrator(
        &self,
        unit: UnitCode,
        name: &str,
        mobile: &str,
        by: &Actor,
    ) -> Result<Administrator, ServiceError> {
        let entry = self
            .entry(by, &actions::ADMIN_CREATE, format!("unit:{unit}"))
            .unit(Some(&unit));
        let result = async {
            let admin = NewAdministrator {
                unit,
                name: clean_name(name)
                    .map_err(|e| ServiceError::InvalidInput(format!("administrator name: {e}")))?,
                mobile: Mobile::parse(mobile)
                    .map_err(|e| ServiceError::InvalidInput(e.to_string()))?,
            };
            let mut entry = entry.clone();
            entry = entry
                .detail("name", admin.name.clone())
                .detail("mobile", admin.mobile.as_str());
            let added = self
                .storage
                .insert_administrator(&admin, self.clock.now(), self.audited(entry))
                .await?;
            tracing::info!(unit = %added.unit_code, by = %by.name, "administrator added");
            Ok(added)
        }
        .await;
        self.finish(entry, result).await
    }

    pub async fn administrator(&self, id: i64) -> Result<Option<Administrator>, ServiceError> {
        Ok(self.storage.administrator(id).await?)
    }

    pub async fn update_administrator(
        &self,
        admin: &Administrator,
        name: &str,
        mobile: &str,
        by: &Actor,
    ) -> Result<Administrator, ServiceError> {
        let entry = self
            .entry(
                by,
                &actions::ADMIN_UPDATE,
                format!("administrator:{}", admin.id),
            )
            .unit(Some(&admin.unit_code));
        let result = async {
            let name = clean_name(name)
                .map_err(|e| ServiceError::InvalidInput(format!("administrator name: {e}")))?;
            let mobile =
                Mobile::parse(mobile).map_err(|e| ServiceError::InvalidInput(e.to_string()))?;
            Ok(self
                .storage
                .update_administrator(admin.id, &name, &mobile, self.audited(entry.clone()))
                .await?)
        }
        .await;
        self.finish(entry, result).await
    }

    pub async fn delete_administrator(
        &self,
        admin: &Administrator,
        by: &Actor,
    ) -> Result<(), ServiceError> {
        let entry = self
            .entry(
                by,
                &actions::ADMIN_DELETE,
                format!("administrator:{}", admin.id),
            )
            .unit(Some(&admin.unit_code));
        let result = self
            .storage
            .delete_administrator(admin.id, self.audited(entry.clone()))
            .await
            .map_err(ServiceError::from);
        self.finish(entry, result).await
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
        by: &Actor,
    ) -> Result<Token, ServiceError> {
        let entry = self
            .entry(
                by,
                &actions::TOKEN_REGISTER,
                format!("token:{}", registration.serial),
            )
            .unit(registration.unit.as_ref())
            .detail("reason", reason_text.trim());
        let result = async {
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
            let entry = entry
                .clone()
                .detail("fingerprint", new.fingerprint.to_hex())
                .detail("cert_serial", new.cert_serial.clone());
            let token = self
                .storage
                .register_token(
                    &new,
                    registration.unit.as_ref(),
                    &by.name,
                    &why,
                    self.clock.now(),
                    self.audited(entry),
                )
                .await?;
            tracing::info!(token = %token.serial, unit = ?token.unit_code.as_ref().map(UnitCode::as_str), status = %token.status, by = %by.name, "token registered");
            Ok(token)
        }
        .await;
        self.finish(entry, result).await
    }

    pub async fn change_token(
        &self,
        serial: &TokenSerial,
        change: &TokenChange,
        reason_text: &str,
        by: &Actor,
    ) -> Result<Token, ServiceError> {
        let action = match change {
            TokenChange::Bind(_) => &actions::TOKEN_BIND,
            TokenChange::Rebind(_) => &actions::TOKEN_REBIND,
            TokenChange::Suspend => &actions::TOKEN_SUSPEND,
            TokenChange::Resume => &actions::TOKEN_RESUME,
            TokenChange::Lost => &actions::TOKEN_LOST,
            _ => &actions::TOKEN_REVOKE,
        };
        let mut entry = self
            .entry(by, action, format!("token:{serial}"))
            .detail("reason", reason_text.trim());
        if let TokenChange::Revoke {
            replaced_by: Some(other),
        } = change
        {
            entry = entry.detail("replaced_by", other.as_str());
        }
        if let Ok(Some(token)) = self.storage.token(serial).await {
            entry.unit = token.unit_code;
        }
        let result = async {
            let why = reason(reason_text)?;
            let token = self
                .storage
                .change_token(
                    serial,
                    change,
                    &by.name,
                    &why,
                    self.clock.now(),
                    self.audited(entry.clone()),
                )
                .await?;
            tracing::info!(token = %serial, unit = ?token.unit_code.as_ref().map(UnitCode::as_str), status = %token.status, change = ?change, by = %by.name, "token changed");
            Ok(token)
        }
        .await;
        self.finish(entry, result).await
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

    pub async fn login_page(
        &self,
        query: &LoginPageQuery,
    ) -> Result<Vec<LoginRecord>, ServiceError> {
        Ok(self.storage.login_page(query).await?)
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
