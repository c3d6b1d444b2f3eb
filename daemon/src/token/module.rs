//! One owner thread per PKCS#11 module. The thread holds the module's context and every
//! session on its tokens (cryptoki sessions are `Send` but not `Sync`), runs the jobs sent to
//! it one at a time, rescans on PC/SC events and on a slow poll, and re-initialises the
//! module (`C_Finalize` + `C_Initialize`, rate-limited) when that is needed to see changes.
//! A module that hangs hangs only its own thread: callers wait with a bound.

use crate::token::error::{TokenError, from_cryptoki, is_gone, rv_of};
use crate::token::models::{KnownModel, PinLimits, known_model, pin_limits};
use crate::token::pcsc_monitor::{PcscChange, PcscService, PcscView};
use crate::token::state::{StateHub, TokenFlags, TokenState, TokenStatus};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::mechanism::MechanismType;
use cryptoki::object::ObjectHandle;
use cryptoki::session::{Session, SessionState};
use cryptoki::slot::{Slot, TokenInfo};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use ukey_proto::{PinPolicy, TokenSerial};

/// Work for a module's owner thread.
pub(crate) type Job = Box<dyn FnOnce(&mut ModuleState) + Send>;

pub(crate) enum Msg {
    Job(Job),
    /// A PC/SC change; `force_reinit` when pcscd went away or came back (sessions are dead).
    Pcsc {
        change: PcscChange,
        force_reinit: bool,
    },
    Stop,
}

/// Who is logged in on a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    /// The security officer (IT staff provisioning a token; ykcs11 takes the PIV management
    /// key as the SO PIN).
    SecurityOfficer,
}

/// What a loaded module says about itself, or why it could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleReport {
    pub path: PathBuf,
    pub library_description: Option<String>,
    pub manufacturer: Option<String>,
    pub version: Option<String>,
    pub error: Option<String>,
}

/// Settings a module thread needs.
#[derive(Debug, Clone)]
pub(crate) struct ModuleSettings {
    pub poll_interval: Duration,
    pub reinit_min_interval: Duration,
    pub pin_policy: PinPolicy,
    /// Every module in priority order: a token seen through two modules (same reader) is
    /// served by the earlier one.
    pub order: Arc<Vec<PathBuf>>,
}

/// The caller's side of a module thread.
pub(crate) struct ModuleHandle {
    pub path: PathBuf,
    tx: mpsc::Sender<Msg>,
    thread: Mutex<Option<JoinHandle<()>>>,
    pub report: Arc<Mutex<ModuleReport>>,
}

impl ModuleHandle {
    pub(crate) fn spawn(
        path: PathBuf,
        hub: Arc<StateHub>,
        pcsc: watch::Receiver<PcscView>,
        settings: ModuleSettings,
    ) -> std::io::Result<ModuleHandle> {
        let (tx, rx) = mpsc::channel();
        let report = Arc::new(Mutex::new(ModuleReport {
            path: path.clone(),
            library_description: None,
            manufacturer: None,
            version: None,
            error: None,
        }));
        let state = ModuleState {
            path: path.clone(),
            ctx: None,
            initialized: false,
            tokens: BTreeMap::new(),
            hub,
            pcsc,
            settings,
            last_reinit: None,
            pending: None,
            next_poll: Instant::now(),
            report: report.clone(),
            listing_fails: false,
            uses_pcsc: false,
            pcsc_down: false,
            restart_pending: false,
            last_job: None,
        };
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let thread = std::thread::Builder::new()
            .name(format!("ukeyd-p11-{name}"))
            .spawn(move || state.run(rx))?;
        Ok(ModuleHandle {
            path,
            tx,
            thread: Mutex::new(Some(thread)),
            report,
        })
    }

    pub(crate) fn send(&self, msg: Msg) -> Result<(), TokenError> {
        self.tx.send(msg).map_err(|_| TokenError::ModuleStopped {
            module: self.path.clone(),
        })
    }

    /// Runs `f` on the owner thread and waits for its answer at most `timeout`.
    pub(crate) fn call<T: Send + 'static>(
        &self,
        operation: &'static str,
        timeout: Duration,
        f: impl FnOnce(&mut ModuleState) -> Result<T, TokenError> + Send + 'static,
    ) -> Result<T, TokenError> {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        self.send(Msg::Job(Box::new(move |m| {
            let _ = reply_tx.send(f(m));
        })))?;
        match receive(&reply_rx, timeout, Some(Instant::now()), REPLY_SPIN) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(TokenError::Timeout {
                module: self.path.clone(),
                operation,
                waited: timeout,
            }),
            Err(RecvTimeoutError::Disconnected) => Err(TokenError::ModuleStopped {
                module: self.path.clone(),
            }),
        }
    }

    /// Asks the thread to stop and waits for it at most `timeout` (a thread stuck in a module
    /// call is left behind rather than hanging the caller).
    pub(crate) fn stop(&self, timeout: Duration) {
        let _ = self.tx.send(Msg::Stop);
        let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take()) else {
            return;
        };
        let deadline = Instant::now() + timeout;
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            tracing::warn!(module = %self.path.display(), "module thread did not stop in time; leaving it");
        }
    }
}

/// One token as its module thread holds it.
pub(crate) struct Entry {
    pub slot: Slot,
    pub reader: Option<String>,
    pub session: Option<Session>,
    pub login: Option<Role>,
    /// Private key handles by `CKA_ID`, valid for the current session.
    pub keys: HashMap<Vec<u8>, ObjectHandle>,
    pub limits: PinLimits,
    pub model: Option<&'static KnownModel>,
    pub flags: TokenFlags,
    pub mechanisms: Option<Vec<MechanismType>>,
    /// The user PIN was unblocked since the last login attempt.
    pub unblocked: bool,
}

impl Entry {
    /// Takes the token's flags, except the retry flags a module keeps stale after an unblock
    /// (ykcs11 only refreshes them at the next `C_Login`).
    pub(crate) fn set_flags(&mut self, info: &TokenInfo) {
        self.flags = TokenFlags::from_info(info);
        if self.unblocked {
            self.flags.user_pin_locked = false;
            self.flags.user_pin_final_try = false;
            self.flags.user_pin_count_low = false;
        }
    }

    pub(crate) fn drop_session(&mut self) {
        self.keys.clear();
        self.login = None;
        self.session = None;
    }
}

/// Everything the owner thread owns.
pub(crate) struct ModuleState {
    pub path: PathBuf,
    pub ctx: Option<Pkcs11>,
    initialized: bool,
    pub tokens: BTreeMap<TokenSerial, Entry>,
    pub hub: Arc<StateHub>,
    pcsc: watch::Receiver<PcscView>,
    pub settings: ModuleSettings,
    last_reinit: Option<Instant>,
    /// A rescan waiting for its time, and whether it must re-initialise.
    pending: Option<(Instant, bool)>,
    next_poll: Instant,
    report: Arc<Mutex<ModuleReport>>,
    /// `C_GetSlotList` failed last time (logged once per streak).
    listing_fails: bool,
    /// Some slot of this module stands for a PC/SC reader.
    uses_pcsc: bool,
    /// pcscd is away: no calls into a module that uses it.
    pcsc_down: bool,
    /// pcscd is back after a loss: re-initialise before anything else.
    restart_pending: bool,
    /// When the last job finished (jobs come in bursts: a handshake, a provisioning run).
    last_job: Option<Instant>,
}

/// How long a thread keeps checking for a message before it parks. Handing a signature to
/// the owner thread and back costs two thread wake-ups otherwise (tens of microseconds on a
/// busy machine, as much as a SoftHSM signature); a short check right after activity keeps
/// the owner thread's overhead small without burning a core while idle.
const SPIN: Duration = Duration::from_micros(200);

/// The caller waiting for an answer checks for longer: it has nothing else to do, and a
/// fast token (SoftHSM RSA: about 0.7 ms) answers within this.
const REPLY_SPIN: Duration = Duration::from_millis(1);

/// Receives with a bound: checks without parking for up to `spin` after `active_since`,
/// then parks for the rest of `timeout`.
fn receive<T>(
    rx: &mpsc::Receiver<T>,
    timeout: Duration,
    active_since: Option<Instant>,
    spin: Duration,
) -> Result<T, RecvTimeoutError> {
    let start = Instant::now();
    if let Some(since) = active_since {
        let spin_until = (since + spin).min(start + timeout);
        // No yield_now here: on a busy machine it can hand the core away for a whole
        // time slice, which is what the spin is meant to avoid.
        while Instant::now() < spin_until {
            match rx.try_recv() {
                Ok(v) => return Ok(v),
                Err(mpsc::TryRecvError::Disconnected) => {
                    return Err(RecvTimeoutError::Disconnected);
                }
                Err(mpsc::TryRecvError::Empty) => std::hint::spin_loop(),
            }
        }
    }
    rx.recv_timeout(timeout.saturating_sub(start.elapsed()))
}

/// How long pcscd gets to set its readers up after coming back.
const PCSC_SETTLE: Duration = Duration::from_millis(150);

impl ModuleState {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let span = tracing::info_span!("module", path = %self.path.display());
        let _enter = span.enter();
        self.load();
        self.refresh(true);
        loop {
            let now = Instant::now();
            let due = self
                .pending
                .map_or(self.next_poll, |(at, _)| at.min(self.next_poll));
            let msg = if due <= now {
                rx.try_recv().map_err(|e| match e {
                    mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                    mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                })
            } else {
                receive(&rx, due - now, self.last_job, SPIN)
            };
            match msg {
                Ok(Msg::Job(job)) => {
                    job(&mut self);
                    self.last_job = Some(Instant::now());
                }
                Ok(Msg::Pcsc {
                    change,
                    force_reinit,
                }) => self.on_pcsc(change, force_reinit),
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            if let Some((at, force)) = self.pending
                && at <= now
            {
                self.pending = None;
                self.refresh(force);
            } else if self.next_poll <= now {
                self.refresh(false);
            }
        }
        for entry in self.tokens.values_mut() {
            entry.drop_session();
        }
        if let Some(ctx) = self.ctx.take()
            && self.initialized
        {
            let _ = ctx.finalize();
        }
    }

    fn load(&mut self) {
        let loaded = Pkcs11::new(&self.path);
        let mut report = self.report.lock().ok();
        match loaded {
            Ok(ctx) => {
                self.ctx = Some(ctx);
                if let Some(r) = report.as_mut() {
                    r.error = None;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "PKCS#11 module could not be loaded");
                if let Some(r) = report.as_mut() {
                    r.error = Some(format!("could not be loaded: {e}"));
                }
            }
        }
    }

    fn initialize(&mut self) {
        let Some(ctx) = self.ctx.as_ref() else {
            return;
        };
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(())
            | Err(cryptoki::error::Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {
                self.initialized = true;
                let info = ctx.get_library_info().ok();
                if let Ok(mut r) = self.report.lock() {
                    r.error = None;
                    if let Some(info) = info {
                        r.library_description = Some(info.library_description().trim().to_owned());
                        r.manufacturer = Some(info.manufacturer_id().trim().to_owned());
                        r.version = Some(info.library_version().to_string());
                    }
                }
            }
            Err(e) => {
                self.initialized = false;
                tracing::warn!(error = %e, "C_Initialize failed");
                if let Ok(mut r) = self.report.lock() {
                    r.error = Some(format!("C_Initialize failed: {e}"));
                }
            }
        }
    }

    /// `C_Finalize` + `C_Initialize`: the only way many modules notice tokens that came or
    /// went. Every session (and so every login) on this module ends.
    fn reinitialize(&mut self) {
        for entry in self.tokens.values_mut() {
            entry.drop_session();
        }
        if let Some(ctx) = self.ctx.as_ref()
            && self.initialized
            && let Err(e) = ctx.clone().finalize()
        {
            tracing::debug!(error = %e, "C_Finalize failed");
        }
        self.initialized = false;
        self.last_reinit = Some(Instant::now());
        self.initialize();
        tracing::debug!("module re-initialised");
    }

    fn on_pcsc(&mut self, change: PcscChange, force: bool) {
        match &change {
            PcscChange::ServiceLost { .. } => {
                // Every session on a PC/SC token is dead. Calling the module now would go to a
                // pcscd that is not there (libpcsclite can then block forever), so wait for it.
                self.pcsc_down = true;
                for entry in self.tokens.values_mut() {
                    if entry.reader.is_some() {
                        entry.drop_session();
                    }
                }
                return;
            }
            PcscChange::ServiceUp if force => {
                // Back after a loss: start the module afresh before anything else touches it,
                // once pcscd has had a moment to set its readers up.
                self.pcsc_down = false;
                self.restart_pending = true;
                self.pending = Some((Instant::now() + PCSC_SETTLE, true));
                return;
            }
            PcscChange::CardRemoved { reader } | PcscChange::ReaderRemoved { reader } => {
                for entry in self.tokens.values_mut() {
                    if entry.reader.as_ref() == Some(reader) {
                        entry.drop_session();
                    }
                }
            }
            _ => {}
        }
        if !self.pcsc_down && !self.restart_pending {
            self.schedule_refresh(force);
        }
    }

    /// A login worked: the module is in a good state, so a forced re-initialisation still
    /// waiting (after a pcscd restart) would only throw the login away.
    pub(crate) fn login_succeeded(&mut self) {
        if let Some((at, _)) = self.pending {
            self.pending = Some((at, false));
        }
    }

    /// Asks for a rescan now, or as soon as the rate limit allows a re-initialisation.
    pub(crate) fn schedule_refresh(&mut self, force_reinit: bool) {
        let now = Instant::now();
        // A re-initialisation waits for the rate limit; a plain rescan runs now.
        let mut at = match (force_reinit, self.last_reinit) {
            (true, Some(last)) => (last + self.settings.reinit_min_interval).max(now),
            _ => now,
        };
        let mut force = force_reinit;
        if let Some((pending_at, pending_force)) = self.pending {
            at = at.min(pending_at);
            force |= pending_force;
        }
        self.pending = Some((at, force));
    }

    /// Re-initialises when needed and allowed, then rescans the tokens and publishes them.
    fn refresh(&mut self, force_reinit: bool) {
        self.next_poll = Instant::now() + self.settings.poll_interval;
        if self.ctx.is_none() {
            self.publish(BTreeMap::new());
            return;
        }
        if self.pcsc_down && self.uses_pcsc {
            return;
        }
        self.drop_sessions_of_absent_tokens();
        let anyone_logged_in = self.tokens.values().any(|e| e.login.is_some());
        let want = force_reinit || !anyone_logged_in || !self.initialized;
        if self.restart_pending {
            self.restart_pending = false;
            self.reinitialize();
        } else if want {
            let earliest = self
                .last_reinit
                .map(|t| t + self.settings.reinit_min_interval);
            match earliest {
                Some(at) if at > Instant::now() => {
                    // Too soon: scan what the module sees now, re-initialise later.
                    let force = force_reinit || self.pending.is_some_and(|(_, f)| f);
                    self.pending = Some((at, force));
                }
                _ => self.reinitialize(),
            }
        }
        let seen = self.scan();
        self.publish(seen);
    }

    fn drop_sessions_of_absent_tokens(&mut self) {
        let view = self.pcsc.borrow().clone();
        for (serial, entry) in self.tokens.iter_mut() {
            let absent_in_hub = self
                .hub
                .state_of(serial)
                .is_some_and(|s| s == TokenState::Absent);
            if entry.session.is_some()
                && (absent_in_hub || reader_is_empty(&view, entry.reader.as_deref()))
            {
                entry.drop_session();
            }
        }
    }

    /// Lists the tokens the module sees now, and checks the health of open sessions.
    fn scan(&mut self) -> BTreeMap<TokenSerial, (TokenInfo, Option<String>)> {
        let mut seen = BTreeMap::new();
        let Some(ctx) = self.ctx.clone().filter(|_| self.initialized) else {
            return seen;
        };
        let slots = match ctx.get_slots_with_token() {
            Ok(s) => s,
            Err(e) => {
                if !self.listing_fails {
                    tracing::warn!(error = %e, "C_GetSlotList failed; re-initialising");
                }
                self.listing_fails = true;
                if rv_of(&e).is_some_and(|(_, rv)| is_gone(rv)) {
                    self.schedule_refresh(true);
                }
                return seen;
            }
        };
        self.listing_fails = false;
        let view = self.pcsc.borrow().clone();
        for slot in slots {
            let Ok(info) = ctx.get_token_info(slot) else {
                continue;
            };
            let Ok(serial) = TokenSerial::parse(info.serial_number()) else {
                tracing::debug!(
                    serial = info.serial_number(),
                    "token without a usable serial skipped"
                );
                continue;
            };
            if seen.contains_key(&serial) {
                // Tokens are told apart by serial; a module that gives two tokens the same one
                // (OpenSC's PIV emulation says 00000000 for cards without one) hides all but
                // the first. A vendor module usually reports the real serial.
                tracing::warn!(%serial, "two tokens report the same serial; only the first is used");
                continue;
            }
            let description = ctx
                .get_slot_info(slot)
                .map(|s| s.slot_description().trim().to_owned())
                .unwrap_or_default();
            // While pcscd is away, a slot keeps the reader it was tied to (and so counts as
            // empty) rather than passing for a token that needs no PC/SC.
            let reader = match_reader(&description, &view).or_else(|| {
                (view.service != PcscService::Up)
                    .then(|| self.tokens.get(&serial).and_then(|e| e.reader.clone()))
                    .flatten()
            });
            self.uses_pcsc |= reader.is_some();
            if reader_is_empty(&view, reader.as_deref()) {
                // The module has not noticed yet; PC/SC is the authority on presence.
                continue;
            }
            let entry = self.tokens.entry(serial.clone()).or_insert_with(|| Entry {
                slot,
                reader: reader.clone(),
                session: None,
                login: None,
                keys: HashMap::new(),
                limits: pin_limits("", "", 0, 0),
                model: None,
                flags: TokenFlags::default(),
                mechanisms: None,
                unblocked: false,
            });
            if entry.slot != slot {
                entry.drop_session();
                entry.mechanisms = None;
                entry.slot = slot;
            }
            entry.reader = reader.clone();
            entry.model = known_model(info.manufacturer_id(), info.model());
            entry.limits = pin_limits(
                info.manufacturer_id(),
                info.model(),
                info.min_pin_length(),
                info.max_pin_length(),
            );
            entry.set_flags(&info);
            if let Some(session) = entry.session.as_ref() {
                match session.get_session_info() {
                    Ok(si) => {
                        let user = matches!(
                            si.session_state(),
                            SessionState::RoUser | SessionState::RwUser
                        );
                        if entry.login == Some(Role::User) && !user {
                            entry.login = None;
                        }
                    }
                    Err(_) => entry.drop_session(),
                }
            }
            seen.insert(serial, (info, reader));
        }
        let gone: Vec<TokenSerial> = self
            .tokens
            .keys()
            .filter(|s| !seen.contains_key(*s))
            .cloned()
            .collect();
        for serial in gone {
            if let Some(mut entry) = self.tokens.remove(&serial) {
                entry.drop_session();
            }
        }
        seen
    }

    /// Publishes this module's tokens: those seen with their state, the others Absent.
    fn publish(&self, seen: BTreeMap<TokenSerial, (TokenInfo, Option<String>)>) {
        let order = self.settings.order.clone();
        let rank = |p: &Path| order.iter().position(|o| o == p).unwrap_or(usize::MAX);
        let mine = rank(&self.path);
        self.hub.modify(|tokens| {
            for (serial, (info, reader)) in &seen {
                let shadowed = tokens.values().any(|t| {
                    t.module != self.path
                        && t.state.is_present()
                        && rank(&t.module) < mine
                        && (&t.serial == serial || (reader.is_some() && t.reader == *reader))
                });
                if shadowed {
                    continue;
                }
                let Some(entry) = self.tokens.get(serial) else {
                    continue;
                };
                let state = state_of(entry);
                let status = tokens.entry(serial.clone()).or_insert_with(|| TokenStatus {
                    serial: serial.clone(),
                    label: String::new(),
                    manufacturer: String::new(),
                    model: String::new(),
                    module: self.path.clone(),
                    reader: None,
                    state: TokenState::Absent,
                    flags: TokenFlags::default(),
                    retries: entry.flags.user_retries(),
                    pin: entry.limits.clone(),
                    insertion: 0,
                });
                status.label = info.label().trim().to_owned();
                status.manufacturer = info.manufacturer_id().trim().to_owned();
                status.model = info.model().trim().to_owned();
                status.module = self.path.clone();
                status.reader = reader.clone();
                status.flags = entry.flags;
                status.retries = entry.flags.user_retries();
                status.pin = entry.limits.clone();
                status.state = state;
            }
            for status in tokens.values_mut() {
                if status.module == self.path && !seen.contains_key(&status.serial) {
                    status.state = TokenState::Absent;
                }
            }
        });
    }

    /// Publishes one token's current flags and state after an operation on it.
    pub(crate) fn publish_token(&mut self, serial: &TokenSerial) {
        let Some(entry) = self.tokens.get_mut(serial) else {
            return;
        };
        if let Some(ctx) = self.ctx.as_ref()
            && let Ok(info) = ctx.get_token_info(entry.slot)
        {
            entry.set_flags(&info);
        }
        let state = state_of(entry);
        let flags = entry.flags;
        self.hub.modify(|tokens| {
            if let Some(t) = tokens.get_mut(serial) {
                t.flags = flags;
                t.retries = flags.user_retries();
                t.state = state;
            }
        });
    }

    /// The token's entry, or why there is none.
    pub(crate) fn entry(&mut self, serial: &TokenSerial) -> Result<&mut Entry, TokenError> {
        if !self.tokens.contains_key(serial) {
            return Err(match self.hub.state_of(serial) {
                Some(_) => TokenError::TokenAbsent {
                    serial: serial.clone(),
                },
                None => TokenError::UnknownToken {
                    serial: serial.clone(),
                },
            });
        }
        self.tokens
            .get_mut(serial)
            .ok_or_else(|| TokenError::UnknownToken {
                serial: serial.clone(),
            })
    }

    /// The token's session, opened (read-write where the token allows) if there is none.
    pub(crate) fn session(&mut self, serial: &TokenSerial) -> Result<&Session, TokenError> {
        let ctx = self.ctx.clone().ok_or_else(|| TokenError::ModuleStopped {
            module: self.path.clone(),
        })?;
        let entry = self.entry(serial)?;
        if entry.session.is_none() {
            let opened = match ctx.open_rw_session(entry.slot) {
                Err(e) if rv_of(&e).is_some_and(|(_, rv)| rv == RvError::TokenWriteProtected) => {
                    ctx.open_ro_session(entry.slot)
                }
                other => other,
            };
            entry.session =
                Some(opened.map_err(|e| from_cryptoki(serial, Function::OpenSession, e))?);
        }
        entry
            .session
            .as_ref()
            .ok_or_else(|| TokenError::NotLoggedIn {
                serial: serial.clone(),
            })
    }

    /// Handles an error from a token call: when the token has gone, its session is dropped
    /// and a rescan (with re-initialisation) is due at once.
    pub(crate) fn after_error(&mut self, serial: &TokenSerial, err: &TokenError) {
        if err.token_gone() {
            if let Some(entry) = self.tokens.get_mut(serial) {
                entry.drop_session();
            }
            self.hub.set_state(serial, TokenState::Absent);
            self.schedule_refresh(true);
        }
    }

    /// The mechanisms the token's slot offers (cached per slot).
    pub(crate) fn mechanisms(
        &mut self,
        serial: &TokenSerial,
    ) -> Result<Vec<MechanismType>, TokenError> {
        let ctx = self.ctx.clone().ok_or_else(|| TokenError::ModuleStopped {
            module: self.path.clone(),
        })?;
        let entry = self.entry(serial)?;
        if let Some(m) = &entry.mechanisms {
            return Ok(m.clone());
        }
        let list = ctx
            .get_mechanism_list(entry.slot)
            .map_err(|e| from_cryptoki(serial, Function::GetMechanismList, e))?;
        entry.mechanisms = Some(list.clone());
        Ok(list)
    }
}

fn state_of(entry: &Entry) -> TokenState {
    if entry.flags.user_pin_locked {
        TokenState::Locked
    } else if entry.login == Some(Role::User) {
        TokenState::LoggedIn
    } else {
        TokenState::Present
    }
}

/// The PC/SC reader a slot stands for: modules name slots after readers, truncated to the
/// 64 characters of `CK_SLOT_INFO.slotDescription`.
fn match_reader(description: &str, view: &PcscView) -> Option<String> {
    if description.is_empty() {
        return None;
    }
    view.readers
        .iter()
        .find(|r| {
            r.name == description || (description.len() >= 32 && r.name.starts_with(description))
        })
        .map(|r| r.name.clone())
}

/// True when PC/SC is up and says this reader holds no card (or no longer exists).
fn reader_is_empty(view: &PcscView, reader: Option<&str>) -> bool {
    let Some(reader) = reader else {
        return false;
    };
    match view.service {
        PcscService::Up => !view
            .readers
            .iter()
            .any(|r| r.name == reader && r.card_present),
        PcscService::Unavailable(_) => true,
        PcscService::Starting | PcscService::Disabled => false,
    }
}
