//! The token manager: starts the PC/SC monitor and one owner thread per PKCS#11 module, keeps
//! the token table, and routes each operation to the thread that owns the token.
//!
//! Every operation blocks its caller for as long as the token takes, bounded by a timeout;
//! from async code call it inside `tokio::task::spawn_blocking`. State changes are published
//! on channels ([`TokenManager::watch_tokens`], [`TokenManager::subscribe`]) as they happen:
//! a token pulled out is `Absent` as soon as PC/SC reports it, without waiting for its module.

use crate::token::algorithms::SignAlgorithm;
use crate::token::error::TokenError;
use crate::token::key::TokenKey;
use crate::token::module::{ModuleHandle, ModuleReport, ModuleSettings, Msg, Role};
use crate::token::objects::{KeyInfo, TokenObjects};
use crate::token::ops::{KeySpec, LoginOptions, LoginOutcome};
use crate::token::p11kit;
use crate::token::pcsc_monitor::{
    MonitorConfig, PcscChange, PcscEvent, PcscMonitor, PcscService, PcscView,
};
use crate::token::state::{StateHub, TokenEvent, TokenState, TokenStatus, TokenTable};
use crate::token::uri::Pkcs11Uri;
use cryptoki::object::ObjectClass;
use secrecy::SecretString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};
use ukey_proto::{PinPolicy, TokenSerial};

/// What the token layer loads and how it behaves.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// PKCS#11 modules to load, in priority order (a token seen through two modules is served
    /// by the first).
    pub modules: Vec<PathBuf>,
    /// Directories of p11-kit `*.module` files whose modules are loaded after `modules`;
    /// empty for none.
    pub p11kit_dirs: Vec<PathBuf>,
    /// Watch readers over PC/SC.
    pub pcsc: bool,
    pub monitor: MonitorConfig,
    /// How often modules are rescanned without a PC/SC event (SoftHSM and other modules
    /// without PC/SC only show new or removed tokens this way).
    pub poll_interval: Duration,
    /// At most one `C_Finalize` + `C_Initialize` per module per this interval.
    pub reinit_min_interval: Duration,
    /// Bound on login, PIN and object operations.
    pub op_timeout: Duration,
    /// Bound on one signature.
    pub sign_timeout: Duration,
    /// Bound on key generation (RSA on a slow token takes tens of seconds).
    pub keygen_timeout: Duration,
    /// Bound on loading the modules and their first scan at start.
    pub startup_timeout: Duration,
    pub pin_policy: PinPolicy,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            modules: Vec::new(),
            p11kit_dirs: p11kit::SYSTEM_MODULE_DIRS
                .iter()
                .map(PathBuf::from)
                .collect(),
            pcsc: true,
            monitor: MonitorConfig::default(),
            poll_interval: Duration::from_secs(10),
            reinit_min_interval: Duration::from_millis(500),
            op_timeout: Duration::from_secs(30),
            sign_timeout: Duration::from_secs(10),
            keygen_timeout: Duration::from_secs(180),
            startup_timeout: Duration::from_secs(15),
            pin_policy: PinPolicy::default(),
        }
    }
}

impl TokenConfig {
    /// Only these modules: no p11-kit discovery.
    pub fn with_modules(modules: impl IntoIterator<Item = impl Into<PathBuf>>) -> TokenConfig {
        TokenConfig {
            modules: modules.into_iter().map(Into::into).collect(),
            p11kit_dirs: Vec::new(),
            ..TokenConfig::default()
        }
    }

    /// The modules to load: configured ones, then p11-kit's, each library once.
    pub fn module_paths(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        let mut seen: Vec<PathBuf> = Vec::new();
        let discovered = p11kit::discover(&self.p11kit_dirs)
            .into_iter()
            .map(|m| m.library);
        for path in self.modules.iter().cloned().chain(discovered) {
            let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if !seen.contains(&canonical) {
                seen.push(canonical);
                out.push(path);
            }
        }
        out
    }
}

/// The handle to the token layer; cheap to clone. Dropping the last clone stops every thread.
#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager")
            .field("modules", &self.inner.order)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: TokenConfig,
    order: Arc<Vec<PathBuf>>,
    hub: Arc<StateHub>,
    modules: Vec<Arc<ModuleHandle>>,
    pcsc_view: watch::Receiver<PcscView>,
    pcsc_events: broadcast::Sender<PcscEvent>,
    monitor: Mutex<Option<PcscMonitor>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(monitor) = self.monitor.lock().ok().and_then(|mut m| m.take()) {
            monitor.stop();
        }
        for module in &self.modules {
            module.stop(Duration::from_secs(2));
        }
    }
}

impl TokenManager {
    /// Loads the modules, scans their tokens, starts watching PC/SC, and returns once the
    /// first scan is done (bounded by `startup_timeout`). A module that fails to load is
    /// reported by [`modules`](Self::modules), not fatal: other tokens still work.
    pub fn start(config: TokenConfig) -> Result<TokenManager, TokenError> {
        let hub = Arc::new(StateHub::new());
        let initial = if config.pcsc {
            PcscView::default()
        } else {
            PcscView {
                service: PcscService::Disabled,
                readers: Vec::new(),
            }
        };
        let (view_tx, view_rx) = watch::channel(initial);
        let (pcsc_events, _) = broadcast::channel(256);
        let order = Arc::new(config.module_paths());
        let settings = ModuleSettings {
            poll_interval: config.poll_interval,
            reinit_min_interval: config.reinit_min_interval,
            pin_policy: config.pin_policy,
            order: order.clone(),
        };
        let mut modules = Vec::new();
        for path in order.iter() {
            let handle =
                ModuleHandle::spawn(path.clone(), hub.clone(), view_rx.clone(), settings.clone())
                    .map_err(|e| TokenError::Module {
                    module: path.clone(),
                    what: format!("could not start its thread: {e}"),
                })?;
            modules.push(Arc::new(handle));
        }
        let manager = TokenManager {
            inner: Arc::new(Inner {
                config: config.clone(),
                order,
                hub: hub.clone(),
                modules,
                pcsc_view: view_rx,
                pcsc_events: pcsc_events.clone(),
                monitor: Mutex::new(None),
            }),
        };
        manager.wait_for_modules(config.startup_timeout);
        if config.pcsc {
            let sink = pcsc_sink(hub, manager.inner.modules.clone(), pcsc_events);
            let monitor = PcscMonitor::start(config.monitor, sink, view_tx).map_err(|e| {
                TokenError::Module {
                    module: PathBuf::from("pcsc"),
                    what: format!("could not start the PC/SC monitor: {e}"),
                }
            })?;
            if let Ok(mut slot) = manager.inner.monitor.lock() {
                *slot = Some(monitor);
            }
            // Give the monitor its first look at the readers, so that tokens are tied to them.
            let deadline = Instant::now() + Duration::from_secs(2);
            while manager.inner.pcsc_view.borrow().service == PcscService::Starting
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            manager.wait_for_modules(config.startup_timeout);
        }
        Ok(manager)
    }

    /// Waits until every module has handled what was sent to it so far.
    fn wait_for_modules(&self, timeout: Duration) {
        for module in &self.inner.modules {
            if let Err(e) = module.call("scan", timeout, |_| Ok(())) {
                tracing::warn!(module = %module.path.display(), error = %e, "module not ready");
            }
        }
    }

    /// Rescans every module now (re-initialising those where nobody is logged in) and waits
    /// for the scans.
    pub fn rescan(&self) {
        for module in &self.inner.modules {
            let _ = module.call("rescan", self.inner.config.op_timeout, |m| {
                m.schedule_refresh(false);
                Ok(())
            });
        }
        // The rescan runs right after the job; a second no-op job waits for it.
        self.wait_for_modules(self.inner.config.op_timeout);
    }

    /// The current token table.
    pub fn tokens(&self) -> TokenTable {
        self.inner.hub.snapshot()
    }

    /// One token's current status.
    pub fn token(&self, serial: &TokenSerial) -> Option<TokenStatus> {
        self.inner.hub.snapshot().tokens.get(serial).cloned()
    }

    /// The token table, updated as it changes.
    pub fn watch_tokens(&self) -> watch::Receiver<TokenTable> {
        self.inner.hub.subscribe_table()
    }

    /// Every token state change, in order. Removal (`state == Absent`) arrives within
    /// milliseconds of the PC/SC event.
    pub fn subscribe(&self) -> broadcast::Receiver<TokenEvent> {
        self.inner.hub.subscribe_events()
    }

    /// Readers and the PC/SC service, updated as they change.
    pub fn pcsc(&self) -> watch::Receiver<PcscView> {
        self.inner.pcsc_view.clone()
    }

    /// Every PC/SC event, after the token table has taken it into account.
    pub fn subscribe_pcsc(&self) -> broadcast::Receiver<PcscEvent> {
        self.inner.pcsc_events.subscribe()
    }

    /// The loaded modules and their errors.
    pub fn modules(&self) -> Vec<ModuleReport> {
        self.inner
            .modules
            .iter()
            .filter_map(|m| m.report.lock().ok().map(|r| r.clone()))
            .collect()
    }

    pub fn config(&self) -> &TokenConfig {
        &self.inner.config
    }

    /// Blocks until `done` holds for the token table, or `timeout` passes; returns the table
    /// that satisfied it.
    pub fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&TokenTable) -> bool,
    ) -> Option<TokenTable> {
        let deadline = Instant::now() + timeout;
        loop {
            let table = self.tokens();
            if done(&table) {
                return Some(table);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The module that serves a present token.
    fn module_for(&self, serial: &TokenSerial) -> Result<Arc<ModuleHandle>, TokenError> {
        let (state, module) =
            self.inner
                .hub
                .route(serial)
                .ok_or_else(|| TokenError::UnknownToken {
                    serial: serial.clone(),
                })?;
        if state == TokenState::Absent {
            return Err(TokenError::TokenAbsent {
                serial: serial.clone(),
            });
        }
        self.module_at(&module)
    }

    fn module_at(&self, path: &Path) -> Result<Arc<ModuleHandle>, TokenError> {
        self.inner
            .modules
            .iter()
            .find(|m| m.path == path)
            .cloned()
            .ok_or_else(|| TokenError::ModuleStopped {
                module: path.to_path_buf(),
            })
    }

    /// Runs an operation on the token's owner thread; a module that does not answer in time
    /// puts the token in the Error state.
    fn run<T: Send + 'static>(
        &self,
        serial: &TokenSerial,
        operation: &'static str,
        timeout: Duration,
        f: impl FnOnce(&mut crate::token::module::ModuleState) -> Result<T, TokenError> + Send + 'static,
    ) -> Result<T, TokenError> {
        let module = self.module_for(serial)?;
        let span = tracing::info_span!("token", %serial, operation);
        let _enter = span.enter();
        let result = module.call(operation, timeout, f);
        if let Err(e @ TokenError::Timeout { .. }) = &result {
            tracing::error!(error = %e, "token operation timed out");
            self.inner
                .hub
                .set_state(serial, TokenState::Error(e.to_string()));
        }
        result
    }

    /// Logs the user in with `pin`. Refuses without trying when the token is locked, or at
    /// its final try unless `options.force_final_try`; never retries on its own.
    pub fn login(
        &self,
        serial: &TokenSerial,
        pin: SecretString,
        options: LoginOptions,
    ) -> Result<LoginOutcome, TokenError> {
        self.login_as(serial, Role::User, pin, options)
    }

    /// Logs in as the user or the security officer (provisioning).
    pub fn login_as(
        &self,
        serial: &TokenSerial,
        role: Role,
        pin: SecretString,
        options: LoginOptions,
    ) -> Result<LoginOutcome, TokenError> {
        let s = serial.clone();
        self.run(serial, "login", self.inner.config.op_timeout, move |m| {
            m.login(&s, role, &pin, options)
        })
    }

    pub fn logout(&self, serial: &TokenSerial) -> Result<(), TokenError> {
        let s = serial.clone();
        self.run(serial, "logout", self.inner.config.op_timeout, move |m| {
            m.logout(&s)
        })
    }

    /// Changes the user PIN. The new PIN must pass the PIN policy for this token's real
    /// limits (factory and trivial PINs are refused) before the token sees it.
    pub fn change_pin(
        &self,
        serial: &TokenSerial,
        old: SecretString,
        new: SecretString,
        options: LoginOptions,
    ) -> Result<(), TokenError> {
        let s = serial.clone();
        self.run(
            serial,
            "change PIN",
            self.inner.config.op_timeout,
            move |m| m.change_pin(&s, &old, &new, options),
        )
    }

    /// Unblocks a locked user PIN (IT staff): with the PUK where the token has one (PIV),
    /// otherwise with the SO PIN.
    pub fn unblock_pin(
        &self,
        serial: &TokenSerial,
        puk_or_so_pin: SecretString,
        new: SecretString,
    ) -> Result<(), TokenError> {
        let s = serial.clone();
        self.run(
            serial,
            "unblock PIN",
            self.inner.config.op_timeout,
            move |m| m.unblock_pin(&s, &puk_or_so_pin, &new),
        )
    }

    /// Sets the user PIN with the SO PIN (`C_InitPIN`), as provisioning does.
    pub fn init_user_pin(
        &self,
        serial: &TokenSerial,
        so_pin: SecretString,
        new: SecretString,
    ) -> Result<(), TokenError> {
        let s = serial.clone();
        self.run(
            serial,
            "initialise user PIN",
            self.inner.config.op_timeout,
            move |m| m.init_user_pin(&s, &so_pin, &new),
        )
    }

    /// Keys and certificates on the token (private keys once logged in).
    pub fn objects(&self, serial: &TokenSerial) -> Result<TokenObjects, TokenError> {
        let s = serial.clone();
        self.run(
            serial,
            "list objects",
            self.inner.config.op_timeout,
            move |m| m.objects(&s),
        )
    }

    /// The key a PKCS#11 URI names (token by serial/label/model/manufacturer, key by `id` or
    /// `object`), with its certificate when the token holds one with the same `CKA_ID`. With
    /// no key attributes, the token's only signing key.
    pub fn find_key(&self, uri: &Pkcs11Uri) -> Result<TokenKey, TokenError> {
        let table = self.tokens();
        let candidates: Vec<&TokenStatus> = table
            .present()
            .filter(|t| uri.matches_token(&t.label, &t.manufacturer, t.serial.as_str(), &t.model))
            .collect();
        let token = match candidates.as_slice() {
            [one] => *one,
            [] => {
                return Err(TokenError::NoMatchingToken(format!(
                    "no present token matches {uri}"
                )));
            }
            many => {
                let serials: Vec<&str> = many.iter().map(|t| t.serial.as_str()).collect();
                return Err(TokenError::NoMatchingToken(format!(
                    "{} tokens match {uri} ({}): add serial=",
                    many.len(),
                    serials.join(", ")
                )));
            }
        };
        let serial = token.serial.clone();
        let objects = self.objects(&serial)?;
        let matching: Vec<&KeyInfo> = objects
            .keys
            .iter()
            .filter(|k| k.has_private)
            .filter(|k| uri.id.as_ref().is_none_or(|id| *id == k.id))
            .filter(|k| uri.object.as_ref().is_none_or(|l| *l == k.label))
            .collect();
        let selector = uri.to_string();
        let key = match matching.as_slice() {
            [one] => (*one).clone(),
            [] => {
                return Err(if token.state == TokenState::LoggedIn {
                    TokenError::KeyNotFound { serial, selector }
                } else {
                    // Private keys are only visible after login.
                    TokenError::NotLoggedIn { serial }
                });
            }
            _ => return Err(TokenError::AmbiguousKey { serial, selector }),
        };
        let certificate = objects.certificate_for(&key.id).cloned();
        TokenKey::new(self.clone(), serial, key, certificate)
    }

    /// The key with `CKA_ID` = `id` on the token.
    pub fn key(&self, serial: &TokenSerial, id: &[u8]) -> Result<TokenKey, TokenError> {
        self.find_key(&Pkcs11Uri::for_key(serial.as_str(), id))
    }

    /// Signs `message` (hashed on the host) with the key `id`. Fails at once, without asking
    /// the module, when the token is absent or not logged in.
    pub fn sign(
        &self,
        serial: &TokenSerial,
        id: &[u8],
        algorithm: SignAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, TokenError> {
        match self.inner.hub.state_of(serial) {
            None => {
                return Err(TokenError::UnknownToken {
                    serial: serial.clone(),
                });
            }
            Some(TokenState::Absent) => {
                return Err(TokenError::TokenAbsent {
                    serial: serial.clone(),
                });
            }
            Some(TokenState::Present | TokenState::Locked) => {
                return Err(TokenError::NotLoggedIn {
                    serial: serial.clone(),
                });
            }
            Some(TokenState::LoggedIn | TokenState::Error(_)) => {}
        }
        let s = serial.clone();
        let id = id.to_vec();
        let message = message.to_vec();
        self.run(serial, "sign", self.inner.config.sign_timeout, move |m| {
            m.sign(&s, &id, algorithm, &message)
        })
    }

    /// Generates a key pair on the token (logged in as the user, or as the SO where the token
    /// requires it, e.g. PIV). The private key is sensitive and not extractable; the returned
    /// info carries `CKA_LOCAL` and `CKA_EXTRACTABLE` as the token reports them.
    pub fn generate_key_pair(
        &self,
        serial: &TokenSerial,
        spec: KeySpec,
        id: &[u8],
        label: &str,
    ) -> Result<KeyInfo, TokenError> {
        let s = serial.clone();
        let id = id.to_vec();
        let label = label.to_owned();
        self.run(
            serial,
            "generate key pair",
            self.inner.config.keygen_timeout,
            move |m| m.generate_key_pair(&s, spec, &id, &label),
        )
    }

    /// Writes a DER certificate onto the token with `CKA_ID` = `id`, replacing any there.
    pub fn write_certificate(
        &self,
        serial: &TokenSerial,
        id: &[u8],
        label: &str,
        der: &[u8],
    ) -> Result<(), TokenError> {
        let s = serial.clone();
        let id = id.to_vec();
        let label = label.to_owned();
        let der = der.to_vec();
        self.run(
            serial,
            "write certificate",
            self.inner.config.op_timeout,
            move |m| m.write_certificate(&s, &id, &label, &der),
        )
    }

    /// Destroys the key pair and certificate with `CKA_ID` = `id`; returns how many objects.
    pub fn destroy_key(&self, serial: &TokenSerial, id: &[u8]) -> Result<usize, TokenError> {
        let s = serial.clone();
        let id = id.to_vec();
        self.run(
            serial,
            "destroy objects",
            self.inner.config.op_timeout,
            move |m| {
                m.destroy_objects(
                    &s,
                    &id,
                    &[
                        ObjectClass::CERTIFICATE,
                        ObjectClass::PRIVATE_KEY,
                        ObjectClass::PUBLIC_KEY,
                    ],
                )
            },
        )
    }
}

/// What the PC/SC monitor calls for each event: marks tokens absent at once (without waiting
/// for a module), tells the modules to rescan, then passes the event on.
fn pcsc_sink(
    hub: Arc<StateHub>,
    modules: Vec<Arc<ModuleHandle>>,
    events: broadcast::Sender<PcscEvent>,
) -> Box<dyn Fn(PcscEvent) + Send> {
    let lost = AtomicBool::new(false);
    Box::new(move |event: PcscEvent| {
        match &event.change {
            PcscChange::CardRemoved { reader } | PcscChange::ReaderRemoved { reader } => {
                hub.modify(|tokens| {
                    for t in tokens.values_mut() {
                        if t.reader.as_ref() == Some(reader) {
                            t.state = TokenState::Absent;
                        }
                    }
                });
            }
            PcscChange::ServiceLost { .. } => {
                lost.store(true, Ordering::SeqCst);
                hub.modify(|tokens| {
                    for t in tokens.values_mut() {
                        if t.reader.is_some() {
                            t.state = TokenState::Absent;
                        }
                    }
                });
            }
            _ => {}
        }
        // Sessions do not survive pcscd going away: modules must start afresh when it is back.
        let force = match &event.change {
            PcscChange::ServiceLost { .. } => true,
            PcscChange::ServiceUp => lost.swap(false, Ordering::SeqCst),
            _ => false,
        };
        for module in &modules {
            let _ = module.send(Msg::Pcsc {
                change: event.change.clone(),
                force_reinit: force,
            });
        }
        let _ = events.send(event);
    })
}
