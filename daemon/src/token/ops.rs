//! Token operations, run on the module's owner thread.

use crate::token::algorithms::{Curve, KeyKind, SignAlgorithm};
use crate::token::error::{TokenError, from_cryptoki, rv_of};
use crate::token::models::UnblockMethod;
use crate::token::module::{ModuleState, Role};
use crate::token::objects::{CertDetails, CertInfo, KeyInfo, PublicKey, TokenObjects};
use cryptoki::context::Function;
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{
    Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::{Session, UserType};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::collections::BTreeMap;
use ukey_proto::pin::is_factory_or_trivial;
use ukey_proto::{PolicyRejection, TokenSerial, Violation};

/// How to log in.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoginOptions {
    /// Try even when the token reports one try left. Only when the user insists.
    pub force_final_try: bool,
}

/// Why the PIN must be changed before the token is used for work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PinChangeReason {
    /// The token says so (`CKF_USER_PIN_TO_BE_CHANGED`).
    TokenRequires,
    /// The PIN is a factory default or trivial (123456, …): never accepted as a working PIN.
    FactoryPin,
}

/// A successful login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoginOutcome {
    pub serial: TokenSerial,
    pub role: Role,
    pub pin_change_required: Option<PinChangeReason>,
}

/// A key pair to generate on a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeySpec {
    EcP256,
    EcP384,
    Rsa2048,
    Rsa3072,
}

impl KeySpec {
    pub fn kind(self) -> KeyKind {
        match self {
            KeySpec::EcP256 => KeyKind::Ec { curve: Curve::P256 },
            KeySpec::EcP384 => KeyKind::Ec { curve: Curve::P384 },
            KeySpec::Rsa2048 => KeyKind::Rsa { bits: 2048 },
            KeySpec::Rsa3072 => KeyKind::Rsa { bits: 3072 },
        }
    }
}

fn user_type(role: Role) -> UserType {
    match role {
        Role::User => UserType::User,
        Role::SecurityOfficer => UserType::So,
    }
}

impl ModuleState {
    fn check_pin_length(
        &mut self,
        serial: &TokenSerial,
        pin: &SecretString,
    ) -> Result<(), TokenError> {
        let entry = self.entry(serial)?;
        let len = pin.expose_secret().chars().count();
        let limits = &entry.limits;
        if len < limits.effective.min_len || len > limits.effective.max_len {
            return Err(self.pin_length_error(serial));
        }
        Ok(())
    }

    fn pin_length_error(&self, serial: &TokenSerial) -> TokenError {
        let (min_len, max_len, source_of_limit) = match self.tokens.get(serial) {
            Some(e) => (
                e.limits.effective.min_len,
                e.limits.effective.max_len,
                e.limits.source.to_string(),
            ),
            None => (0, 0, String::from("unknown")),
        };
        TokenError::PinLength {
            serial: serial.clone(),
            min_len,
            max_len,
            source_of_limit,
        }
    }

    /// Refuses before touching the PIN when the token is locked, or at its final try unless
    /// forced.
    fn check_retries(&mut self, serial: &TokenSerial, force: bool) -> Result<(), TokenError> {
        self.publish_token(serial);
        let flags = self.entry(serial)?.flags;
        if flags.user_pin_locked {
            return Err(TokenError::PinLocked {
                serial: serial.clone(),
            });
        }
        if flags.user_pin_final_try && !force {
            return Err(TokenError::FinalTryRefused {
                serial: serial.clone(),
            });
        }
        Ok(())
    }

    /// Maps what a PIN-checking call returned, refreshing the retry flags.
    fn pin_error(
        &mut self,
        serial: &TokenSerial,
        call: Function,
        err: cryptoki::error::Error,
    ) -> TokenError {
        let mapped = match rv_of(&err) {
            Some((_, RvError::PinIncorrect)) => {
                self.publish_token(serial);
                let retries = self
                    .tokens
                    .get(serial)
                    .map(|e| e.flags.user_retries())
                    .unwrap_or(crate::token::error::PinRetries::Low);
                if retries == crate::token::error::PinRetries::Locked {
                    TokenError::PinLocked {
                        serial: serial.clone(),
                    }
                } else {
                    TokenError::PinIncorrect {
                        serial: serial.clone(),
                        retries,
                    }
                }
            }
            Some((_, RvError::PinLocked)) => {
                self.publish_token(serial);
                TokenError::PinLocked {
                    serial: serial.clone(),
                }
            }
            Some((_, RvError::PinExpired)) => TokenError::PinExpired {
                serial: serial.clone(),
            },
            Some((_, RvError::PinLenRange)) => self.pin_length_error(serial),
            _ => from_cryptoki(serial, call, err),
        };
        self.after_error(serial, &mapped);
        mapped
    }

    pub(crate) fn login(
        &mut self,
        serial: &TokenSerial,
        role: Role,
        pin: &SecretString,
        options: LoginOptions,
    ) -> Result<LoginOutcome, TokenError> {
        if role == Role::User {
            self.check_retries(serial, options.force_final_try)?;
            self.check_pin_length(serial, pin)?;
        }
        let current = self.entry(serial)?.login;
        if current.is_some_and(|r| r != role) {
            self.logout(serial)?;
        }
        let session = self.session(serial)?;
        let result = session.login(user_type(role), Some(pin));
        if role == Role::User {
            self.entry(serial)?.unblocked = false;
        }
        match result {
            Ok(()) => {}
            Err(e) if rv_of(&e).is_some_and(|(_, rv)| rv == RvError::UserAlreadyLoggedIn) => {}
            Err(e) => return Err(self.pin_error(serial, Function::Login, e)),
        }
        self.entry(serial)?.login = Some(role);
        self.login_succeeded();
        self.publish_token(serial);
        let flags = self.entry(serial)?.flags;
        let pin_change_required = if role != Role::User {
            None
        } else if flags.user_pin_to_be_changed {
            Some(PinChangeReason::TokenRequires)
        } else if is_factory_or_trivial(pin.expose_secret()) {
            Some(PinChangeReason::FactoryPin)
        } else {
            None
        };
        tracing::info!(%serial, ?role, "logged in");
        Ok(LoginOutcome {
            serial: serial.clone(),
            role,
            pin_change_required,
        })
    }

    pub(crate) fn logout(&mut self, serial: &TokenSerial) -> Result<(), TokenError> {
        let entry = self.entry(serial)?;
        if let Some(session) = entry.session.as_ref() {
            match session.logout() {
                Ok(()) => {}
                Err(e) if rv_of(&e).is_some_and(|(_, rv)| rv == RvError::UserNotLoggedIn) => {}
                Err(e) => {
                    let err = from_cryptoki(serial, Function::Logout, e);
                    self.after_error(serial, &err);
                    return Err(err);
                }
            }
        }
        entry.drop_session();
        self.publish_token(serial);
        Ok(())
    }

    /// Checks a new user PIN against the policy and the token's limits.
    fn check_new_pin(
        &mut self,
        serial: &TokenSerial,
        new: &SecretString,
        old: Option<&SecretString>,
    ) -> Result<(), TokenError> {
        let limits = self.entry(serial)?.limits.effective;
        let mut violations = match self.settings.pin_policy.check(new.expose_secret(), &limits) {
            Ok(()) => Vec::new(),
            Err(r) => r.violations,
        };
        if old.is_some_and(|o| o.expose_secret() == new.expose_secret()) {
            violations.push(Violation::SameAsCurrent);
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(TokenError::PinPolicy {
                serial: serial.clone(),
                rejection: PolicyRejection { violations },
            })
        }
    }

    pub(crate) fn change_pin(
        &mut self,
        serial: &TokenSerial,
        old: &SecretString,
        new: &SecretString,
        options: LoginOptions,
    ) -> Result<(), TokenError> {
        self.check_new_pin(serial, new, Some(old))?;
        self.check_retries(serial, options.force_final_try)?;
        self.check_pin_length(serial, old)?;
        let session = self.session(serial)?;
        if let Err(e) = session.set_pin(old, new) {
            return Err(self.pin_error(serial, Function::SetPIN, e));
        }
        self.publish_token(serial);
        tracing::info!(%serial, "user PIN changed");
        Ok(())
    }

    /// Unblocks a locked user PIN and sets a new one: with the PUK on ykcs11, with the SO PIN
    /// (`C_InitPIN`) elsewhere.
    pub(crate) fn unblock_pin(
        &mut self,
        serial: &TokenSerial,
        unblock_secret: &SecretString,
        new: &SecretString,
    ) -> Result<(), TokenError> {
        self.check_new_pin(serial, new, None)?;
        let method = self
            .entry(serial)?
            .model
            .map_or(UnblockMethod::SoInitPin, |m| m.unblock);
        match method {
            UnblockMethod::SoInitPin => return self.init_user_pin(serial, unblock_secret, new),
            UnblockMethod::Ykcs11Puk => {
                let ctx = self.ctx.clone().ok_or_else(|| TokenError::ModuleStopped {
                    module: self.path.clone(),
                })?;
                let slot = self.entry(serial)?.slot;
                let session = ctx
                    .open_rw_session(slot)
                    .map_err(|e| from_cryptoki(serial, Function::OpenSession, e))?;
                let old = SecretString::from(format!("puk:{}", unblock_secret.expose_secret()));
                let new = SecretString::from(format!("pin:{}", new.expose_secret()));
                let result = session.set_pin(&old, &new);
                drop(session);
                if let Err(e) = result {
                    let err = match rv_of(&e) {
                        Some((_, RvError::PinIncorrect | RvError::PinLocked)) => {
                            TokenError::UnblockRefused {
                                serial: serial.clone(),
                            }
                        }
                        _ => self.pin_error(serial, Function::SetPIN, e),
                    };
                    self.publish_token(serial);
                    return Err(err);
                }
            }
        }
        if let Some(entry) = self.tokens.get_mut(serial) {
            entry.unblocked = true;
        }
        self.publish_token(serial);
        tracing::info!(%serial, "user PIN unblocked");
        Ok(())
    }

    /// Sets the user PIN as the security officer (`C_Login(CKU_SO)` + `C_InitPIN`), as
    /// provisioning does.
    pub(crate) fn init_user_pin(
        &mut self,
        serial: &TokenSerial,
        so_pin: &SecretString,
        new: &SecretString,
    ) -> Result<(), TokenError> {
        self.check_new_pin(serial, new, None)?;
        self.login(
            serial,
            Role::SecurityOfficer,
            so_pin,
            LoginOptions::default(),
        )?;
        let result = self.session(serial)?.init_pin(new);
        let logout = self.logout(serial);
        if let Err(e) = result {
            return Err(self.pin_error(serial, Function::InitPIN, e));
        }
        logout?;
        tracing::info!(%serial, "user PIN initialised by the security officer");
        Ok(())
    }

    /// Keys and certificates on the token (private keys only once logged in).
    pub(crate) fn objects(&mut self, serial: &TokenSerial) -> Result<TokenObjects, TokenError> {
        let mechanisms = self.mechanisms(serial)?;
        let result = read_objects(self.session(serial)?, serial, &mechanisms);
        if let Err(e) = &result {
            self.after_error(serial, e);
        }
        result
    }

    pub(crate) fn sign(
        &mut self,
        serial: &TokenSerial,
        id: &[u8],
        algorithm: SignAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, TokenError> {
        if self.entry(serial)?.login != Some(Role::User) {
            return Err(TokenError::NotLoggedIn {
                serial: serial.clone(),
            });
        }
        let handle = self.private_key(serial, id)?;
        let (mechanism, data) = algorithm.prepare(message);
        let signed = self.session(serial)?.sign(&mechanism, handle, &data);
        match signed {
            Ok(raw) => algorithm.finish(raw).map_err(|what| TokenError::Malformed {
                serial: serial.clone(),
                what,
            }),
            Err(e) => {
                let err = match rv_of(&e) {
                    Some((_, RvError::UserNotLoggedIn)) => {
                        // The token forgot the login (reset): say so, and publish it.
                        if let Some(entry) = self.tokens.get_mut(serial) {
                            entry.login = None;
                        }
                        self.publish_token(serial);
                        TokenError::NotLoggedIn {
                            serial: serial.clone(),
                        }
                    }
                    Some((_, RvError::MechanismInvalid | RvError::MechanismParamInvalid)) => {
                        TokenError::MechanismUnsupported {
                            serial: serial.clone(),
                            what: format!("sign with {algorithm:?}"),
                            mechanism: format!("{:?}", algorithm.mechanism_type()),
                        }
                    }
                    Some((_, RvError::KeyHandleInvalid)) => {
                        if let Some(entry) = self.tokens.get_mut(serial) {
                            entry.keys.clear();
                        }
                        from_cryptoki(serial, Function::Sign, e)
                    }
                    _ => from_cryptoki(serial, Function::Sign, e),
                };
                self.after_error(serial, &err);
                Err(err)
            }
        }
    }

    /// The private key with `CKA_ID` = `id`, looked up once per session.
    fn private_key(&mut self, serial: &TokenSerial, id: &[u8]) -> Result<ObjectHandle, TokenError> {
        if let Some(handle) = self.entry(serial)?.keys.get(id) {
            return Ok(*handle);
        }
        let session = self.session(serial)?;
        let template = [
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(id.to_vec()),
        ];
        let found = session.find_objects(&template);
        let handles = match found {
            Ok(h) => h,
            Err(e) => {
                let err = from_cryptoki(serial, Function::FindObjects, e);
                self.after_error(serial, &err);
                return Err(err);
            }
        };
        let selector = format!("id {}", hex::encode(id));
        let handle = match handles.as_slice() {
            [] => {
                return Err(TokenError::KeyNotFound {
                    serial: serial.clone(),
                    selector,
                });
            }
            [one] => *one,
            _ => {
                return Err(TokenError::AmbiguousKey {
                    serial: serial.clone(),
                    selector,
                });
            }
        };
        let always = session
            .get_attributes(handle, &[AttributeType::AlwaysAuthenticate])
            .ok()
            .and_then(|a| {
                a.into_iter().find_map(|a| match a {
                    Attribute::AlwaysAuthenticate(b) => Some(b),
                    _ => None,
                })
            })
            .unwrap_or(false);
        if always {
            return Err(TokenError::PinPerSignature {
                serial: serial.clone(),
                key: hex::encode(id),
            });
        }
        self.entry(serial)?.keys.insert(id.to_vec(), handle);
        Ok(handle)
    }

    /// Generates a key pair on the token; the private key is sensitive and never extractable.
    pub(crate) fn generate_key_pair(
        &mut self,
        serial: &TokenSerial,
        spec: KeySpec,
        id: &[u8],
        label: &str,
    ) -> Result<KeyInfo, TokenError> {
        if self.entry(serial)?.login.is_none() {
            return Err(TokenError::NotLoggedIn {
                serial: serial.clone(),
            });
        }
        let mechanisms = self.mechanisms(serial)?;
        let (mechanism, mut public) = match spec.kind() {
            KeyKind::Ec { curve } => (
                Mechanism::EccKeyPairGen,
                vec![Attribute::EcParams(curve.params_der().to_vec())],
            ),
            KeyKind::Rsa { bits } => (
                Mechanism::RsaPkcsKeyPairGen,
                vec![
                    Attribute::ModulusBits((bits as u64).into()),
                    Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
                ],
            ),
        };
        if !mechanisms.contains(&mechanism.mechanism_type()) {
            return Err(TokenError::MechanismUnsupported {
                serial: serial.clone(),
                what: format!("generate a {} key", spec.kind()),
                mechanism: format!("{:?}", mechanism.mechanism_type()),
            });
        }
        public.extend([
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Id(id.to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
        ]);
        let mut private = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sign(true),
            Attribute::Sensitive(true),
            Attribute::Id(id.to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Extractable(false),
        ];
        let session = self.session(serial)?;
        let mut generated = session.generate_key_pair(&mechanism, &public, &private);
        if generated
            .as_ref()
            .is_err_and(|e| rv_of(e).is_some_and(|(_, rv)| rv == RvError::AttributeTypeInvalid))
        {
            // Some modules (ykcs11) refuse CKA_EXTRACTABLE in the template: their keys never
            // leave the card. What the token reports is checked below.
            private.pop();
            generated = session.generate_key_pair(&mechanism, &public, &private);
        }
        if let Err(e) = generated {
            let err = from_cryptoki(serial, Function::GenerateKeyPair, e);
            self.after_error(serial, &err);
            return Err(err);
        }
        if let Some(entry) = self.tokens.get_mut(serial) {
            entry.keys.remove(id);
        }
        tracing::info!(%serial, key = %hex::encode(id), kind = %spec.kind(), "key pair generated on the token");
        let objects = self.objects(serial)?;
        let key = objects
            .keys
            .into_iter()
            .find(|k| k.id == id)
            .ok_or_else(|| TokenError::KeyNotFound {
                serial: serial.clone(),
                selector: format!("id {} (just generated)", hex::encode(id)),
            })?;
        if key.extractable == Some(true) {
            let _ = self.destroy_objects(
                serial,
                id,
                &[ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY],
            );
            return Err(TokenError::UnsupportedKey {
                serial: serial.clone(),
                key: hex::encode(id),
                reason: "the token made the private key extractable; it was destroyed".into(),
            });
        }
        Ok(key)
    }

    /// Writes a certificate object with `CKA_ID` = `id`, replacing one already there.
    pub(crate) fn write_certificate(
        &mut self,
        serial: &TokenSerial,
        id: &[u8],
        label: &str,
        der: &[u8],
    ) -> Result<(), TokenError> {
        let subject = {
            use x509_parser::prelude::{FromDer, X509Certificate};
            let (_, cert) = X509Certificate::from_der(der).map_err(|e| TokenError::Malformed {
                serial: serial.clone(),
                what: format!("certificate to write is not X.509: {e}"),
            })?;
            cert.subject().as_raw().to_vec()
        };
        self.destroy_objects(serial, id, &[ObjectClass::CERTIFICATE])?;
        let template = [
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Id(id.to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Subject(subject),
            Attribute::Value(der.to_vec()),
        ];
        let created = self.session(serial)?.create_object(&template);
        if let Err(e) = created {
            let err = from_cryptoki(serial, Function::CreateObject, e);
            self.after_error(serial, &err);
            return Err(err);
        }
        tracing::info!(%serial, key = %hex::encode(id), "certificate written to the token");
        Ok(())
    }

    /// Destroys the objects of the given classes with `CKA_ID` = `id`; returns how many.
    pub(crate) fn destroy_objects(
        &mut self,
        serial: &TokenSerial,
        id: &[u8],
        classes: &[ObjectClass],
    ) -> Result<usize, TokenError> {
        let session = self.session(serial)?;
        let mut count = 0;
        let mut result = Ok(());
        for class in classes {
            let found =
                session.find_objects(&[Attribute::Class(*class), Attribute::Id(id.to_vec())]);
            match found {
                Ok(handles) => {
                    for h in handles {
                        match session.destroy_object(h) {
                            Ok(()) => count += 1,
                            Err(e) => {
                                result = Err(from_cryptoki(serial, Function::DestroyObject, e));
                            }
                        }
                    }
                }
                Err(e) => result = Err(from_cryptoki(serial, Function::FindObjects, e)),
            }
        }
        if let Some(entry) = self.tokens.get_mut(serial) {
            entry.keys.remove(id);
        }
        if let Err(err) = result {
            self.after_error(serial, &err);
            return Err(err);
        }
        Ok(count)
    }
}

fn attributes(
    session: &Session,
    handle: ObjectHandle,
    types: &[AttributeType],
) -> cryptoki::error::Result<Vec<Attribute>> {
    session.get_attributes(handle, types)
}

/// Every key and certificate the session can see.
fn read_objects(
    session: &Session,
    serial: &TokenSerial,
    mechanisms: &[cryptoki::mechanism::MechanismType],
) -> Result<TokenObjects, TokenError> {
    let find = |class: ObjectClass| {
        session
            .find_objects(&[Attribute::Class(class)])
            .map_err(|e| from_cryptoki(serial, Function::FindObjects, e))
    };
    let read = |handle, types: &[AttributeType]| {
        attributes(session, handle, types)
            .map_err(|e| from_cryptoki(serial, Function::GetAttributeValue, e))
    };
    let mut keys: BTreeMap<Vec<u8>, KeyInfo> = BTreeMap::new();
    let blank = |id: Vec<u8>| KeyInfo {
        id,
        label: String::new(),
        kind: None,
        has_private: false,
        can_sign: false,
        always_authenticate: false,
        local: None,
        extractable: None,
        sensitive: None,
        public_key: None,
        algorithms: Vec::new(),
    };
    let key_types = [
        AttributeType::Id,
        AttributeType::Label,
        AttributeType::KeyType,
        AttributeType::EcParams,
        AttributeType::EcPoint,
        AttributeType::Modulus,
        AttributeType::PublicExponent,
        AttributeType::Sign,
        AttributeType::AlwaysAuthenticate,
        AttributeType::Local,
        AttributeType::Extractable,
        AttributeType::Sensitive,
    ];
    for (class, private) in [
        (ObjectClass::PRIVATE_KEY, true),
        (ObjectClass::PUBLIC_KEY, false),
    ] {
        for handle in find(class)? {
            let attrs = read(handle, &key_types)?;
            let a = Attrs(attrs);
            let id = a.bytes(AttributeType::Id).unwrap_or_default();
            let key = keys.entry(id.clone()).or_insert_with(|| blank(id));
            if key.label.is_empty() {
                key.label = a.text(AttributeType::Label).unwrap_or_default();
            }
            let kind = match a.key_type() {
                Some(t) if t == KeyType::EC => a
                    .bytes(AttributeType::EcParams)
                    .and_then(|p| Curve::from_params_der(&p))
                    .map(|curve| KeyKind::Ec { curve }),
                Some(t) if t == KeyType::RSA => {
                    a.bytes(AttributeType::Modulus).map(|m| KeyKind::Rsa {
                        bits: modulus_bits(&m),
                    })
                }
                _ => None,
            };
            key.kind = key.kind.or(kind);
            if private {
                key.has_private = true;
                key.can_sign = a.flag(AttributeType::Sign).unwrap_or(false);
                key.always_authenticate =
                    a.flag(AttributeType::AlwaysAuthenticate).unwrap_or(false);
                key.local = a.flag(AttributeType::Local);
                key.extractable = a.flag(AttributeType::Extractable);
                key.sensitive = a.flag(AttributeType::Sensitive);
            } else if key.public_key.is_none() {
                key.public_key = match a.key_type() {
                    Some(t) if t == KeyType::EC => a
                        .bytes(AttributeType::EcParams)
                        .zip(a.bytes(AttributeType::EcPoint))
                        .and_then(|(p, q)| PublicKey::from_ec(&p, &q)),
                    Some(t) if t == KeyType::RSA => a
                        .bytes(AttributeType::Modulus)
                        .zip(a.bytes(AttributeType::PublicExponent))
                        .and_then(|(m, e)| PublicKey::from_rsa(&m, &e)),
                    _ => None,
                };
                if key.local.is_none() {
                    key.local = a.flag(AttributeType::Local);
                }
            }
        }
    }
    let mut certificates = Vec::new();
    for handle in find(ObjectClass::CERTIFICATE)? {
        let a = Attrs(read(
            handle,
            &[
                AttributeType::Id,
                AttributeType::Label,
                AttributeType::Value,
            ],
        )?);
        let der = a.bytes(AttributeType::Value).unwrap_or_default();
        certificates.push(CertInfo {
            id: a.bytes(AttributeType::Id).unwrap_or_default(),
            label: a.text(AttributeType::Label).unwrap_or_default(),
            details: CertDetails::parse(&der),
            der,
        });
    }
    for key in keys.values_mut() {
        if key.public_key.is_none()
            && let Some(Ok(details)) = certificates
                .iter()
                .find(|c| c.id == key.id)
                .map(|c| &c.details)
        {
            key.public_key = details.public_key.clone();
        }
        key.kind = key.kind.or(key.public_key.as_ref().map(|p| p.kind));
        key.algorithms = match key.kind {
            Some(kind) if key.has_private && key.can_sign => {
                SignAlgorithm::for_key(kind, mechanisms)
            }
            _ => Vec::new(),
        };
    }
    Ok(TokenObjects {
        keys: keys.into_values().collect(),
        certificates,
    })
}

fn modulus_bits(m: &[u8]) -> usize {
    match m.iter().position(|b| *b != 0) {
        Some(i) => (m.len() - i) * 8 - m[i].leading_zeros() as usize,
        None => 0,
    }
}

/// Attribute lookups by type.
struct Attrs(Vec<Attribute>);

impl Attrs {
    fn find(&self, t: AttributeType) -> Option<&Attribute> {
        self.0.iter().find(|a| a.attribute_type() == t)
    }

    fn bytes(&self, t: AttributeType) -> Option<Vec<u8>> {
        match self.find(t)? {
            Attribute::Id(v)
            | Attribute::Label(v)
            | Attribute::EcParams(v)
            | Attribute::EcPoint(v)
            | Attribute::Modulus(v)
            | Attribute::PublicExponent(v)
            | Attribute::Value(v) => Some(v.clone()),
            _ => None,
        }
    }

    fn text(&self, t: AttributeType) -> Option<String> {
        self.bytes(t)
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
    }

    fn flag(&self, t: AttributeType) -> Option<bool> {
        match self.find(t)? {
            Attribute::Sign(b)
            | Attribute::AlwaysAuthenticate(b)
            | Attribute::Local(b)
            | Attribute::Extractable(b)
            | Attribute::Sensitive(b) => Some(*b),
            _ => None,
        }
    }

    fn key_type(&self) -> Option<KeyType> {
        match self.find(AttributeType::KeyType)? {
            Attribute::KeyType(k) => Some(*k),
            _ => None,
        }
    }
}
