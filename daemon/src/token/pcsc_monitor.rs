//! The PC/SC monitor: one thread blocked in `SCardGetStatusChange` over every reader and the
//! `\\?PnP?\Notification` pseudo-reader. It turns reader and card changes into events, and
//! survives pcscd going away: it re-establishes its context with backoff and resumes on its
//! own. Having no PC/SC service at all is a normal state (SoftHSM needs none); it is logged
//! once.

use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A change seen over PC/SC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PcscChange {
    /// The PC/SC service answers (at start, or again after it went away).
    ServiceUp,
    /// The PC/SC service went away (pcscd stopped or restarted); every reader is gone with it.
    ServiceLost {
        reason: String,
    },
    ReaderAdded {
        reader: String,
    },
    ReaderRemoved {
        reader: String,
    },
    CardInserted {
        reader: String,
        atr: Vec<u8>,
    },
    CardRemoved {
        reader: String,
    },
}

/// A PC/SC change and when the monitor saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcscEvent {
    pub change: PcscChange,
    pub at: Instant,
}

/// Whether a PC/SC service is there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "service", content = "reason", rename_all = "snake_case")]
pub enum PcscService {
    /// The monitor has not connected yet.
    Starting,
    Up,
    /// No PC/SC service (not installed, not running, or restarting).
    Unavailable(String),
    /// PC/SC monitoring is switched off in the configuration.
    Disabled,
}

/// A reader and its card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReaderStatus {
    pub name: String,
    pub card_present: bool,
    /// The card's ATR in hex, when a card is present.
    pub atr: Option<String>,
    /// The card is held exclusively by another process.
    pub exclusive: bool,
    /// The reader reports a card that does not answer.
    pub mute: bool,
}

/// Readers and the service state, as the monitor last saw them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PcscView {
    #[serde(flatten)]
    pub service: PcscService,
    pub readers: Vec<ReaderStatus>,
}

impl Default for PcscView {
    fn default() -> Self {
        PcscView {
            service: PcscService::Starting,
            readers: Vec::new(),
        }
    }
}

/// Tunables for the monitor; the defaults suit a desktop.
#[derive(Debug, Clone, Copy)]
pub struct MonitorConfig {
    /// A change must stay quiet this long before it is reported (flapping contacts).
    pub settle: Duration,
    /// But a burst of changes is reported after this long at most.
    pub settle_max: Duration,
    /// First wait before reconnecting to a vanished pcscd; doubles up to `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            settle: Duration::from_millis(30),
            settle_max: Duration::from_millis(300),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
        }
    }
}

/// The running monitor; stops its thread when dropped.
pub struct PcscMonitor {
    stop: Arc<AtomicBool>,
    context: Arc<Mutex<Option<pcsc::Context>>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PcscMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcscMonitor").finish_non_exhaustive()
    }
}

/// Where the monitor sends its events.
pub type PcscSink = Box<dyn Fn(PcscEvent) + Send>;

impl PcscMonitor {
    /// Starts the monitor thread. `sink` gets every event in order; `view` always holds the
    /// current readers.
    pub fn start(
        config: MonitorConfig,
        sink: PcscSink,
        view: watch::Sender<PcscView>,
    ) -> std::io::Result<PcscMonitor> {
        let stop = Arc::new(AtomicBool::new(false));
        let context = Arc::new(Mutex::new(None));
        let mut worker = Worker {
            config,
            sink,
            view,
            stop: stop.clone(),
            context: context.clone(),
            known: BTreeMap::new(),
            counts: BTreeMap::new(),
            said_unavailable: false,
        };
        let thread = std::thread::Builder::new()
            .name("ukeyd-pcsc".into())
            .spawn(move || worker.run())?;
        Ok(PcscMonitor {
            stop,
            context,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it (it wakes within a second at most).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(guard) = self.context.lock()
            && let Some(ctx) = guard.as_ref()
        {
            let _ = ctx.cancel();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for PcscMonitor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Worker {
    config: MonitorConfig,
    sink: PcscSink,
    view: watch::Sender<PcscView>,
    stop: Arc<AtomicBool>,
    context: Arc<Mutex<Option<pcsc::Context>>>,
    /// Readers as last reported: name → (card present, ATR, event counter).
    known: BTreeMap<String, ReaderStatus>,
    /// Each reader's card event counter when last reported.
    counts: BTreeMap<String, u32>,
    said_unavailable: bool,
}

/// How a session with pcscd ended.
enum Ended {
    Stopped,
    Lost(pcsc::Error),
}

const POLL: Duration = Duration::from_secs(1);

impl Worker {
    fn run(&mut self) {
        let mut backoff = self.config.backoff_min;
        while !self.stopping() {
            match pcsc::Context::establish(pcsc::Scope::User) {
                Err(e) => {
                    if !self.said_unavailable {
                        tracing::info!(error = %e, "no PC/SC service; tokens that need none still work, and PC/SC is retried in the background");
                        self.said_unavailable = true;
                    }
                    self.view.send_modify(|v| {
                        v.service = PcscService::Unavailable(e.to_string());
                        v.readers.clear();
                    });
                    self.sleep(backoff);
                    backoff = (backoff * 2).min(self.config.backoff_max);
                }
                Ok(ctx) => {
                    if let Ok(mut slot) = self.context.lock() {
                        *slot = Some(ctx.clone());
                    }
                    if self.said_unavailable {
                        tracing::info!("PC/SC service available again");
                    }
                    self.said_unavailable = false;
                    self.emit(PcscChange::ServiceUp);
                    self.view.send_modify(|v| v.service = PcscService::Up);
                    let ended = self.watch(&ctx);
                    if let Ok(mut slot) = self.context.lock() {
                        *slot = None;
                    }
                    let _ = ctx.release();
                    match ended {
                        Ended::Stopped => return,
                        Ended::Lost(e) => {
                            tracing::warn!(error = %e, "PC/SC service lost; reconnecting");
                            self.forget_all();
                            self.emit(PcscChange::ServiceLost {
                                reason: e.to_string(),
                            });
                            self.view.send_modify(|v| {
                                v.service = PcscService::Unavailable(e.to_string());
                                v.readers.clear();
                            });
                            // A restart takes tens of milliseconds: try again soon.
                            backoff = self.config.backoff_min;
                            self.sleep(backoff);
                        }
                    }
                }
            }
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stopping() {
            let now = Instant::now();
            if now >= until {
                return;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }

    fn emit(&self, change: PcscChange) {
        tracing::debug!(?change, "pcsc event");
        (self.sink)(PcscEvent {
            change,
            at: Instant::now(),
        });
    }

    /// Watches readers until the context is lost or the monitor stops.
    fn watch(&mut self, ctx: &pcsc::Context) -> Ended {
        let mut states = match refreshed(ctx, &[]) {
            Ok(s) => s,
            Err(e) => return Ended::Lost(e),
        };
        self.report(&states);
        loop {
            if self.stopping() {
                return Ended::Stopped;
            }
            match ctx.get_status_change(POLL, &mut states) {
                Ok(()) => {}
                Err(pcsc::Error::Timeout) => continue,
                Err(pcsc::Error::Cancelled) if self.stopping() => return Ended::Stopped,
                // A reader vanished between listing and waiting: list again.
                Err(pcsc::Error::UnknownReader) => {
                    match refreshed(ctx, &states) {
                        Ok(s) => states = s,
                        Err(e) => return Ended::Lost(e),
                    }
                    self.report(&states);
                    continue;
                }
                Err(e) => return Ended::Lost(e),
            }
            // Let a burst of changes settle, then report the net result.
            let mut readers_changed = pnp_changed(&states);
            sync(&mut states);
            let burst_end = Instant::now() + self.config.settle_max;
            while Instant::now() < burst_end {
                match ctx.get_status_change(self.config.settle, &mut states) {
                    Ok(()) => {
                        readers_changed |= pnp_changed(&states);
                        sync(&mut states);
                    }
                    Err(pcsc::Error::Timeout) => break,
                    Err(pcsc::Error::Cancelled) if self.stopping() => return Ended::Stopped,
                    Err(pcsc::Error::UnknownReader) => {
                        readers_changed = true;
                        break;
                    }
                    Err(e) => return Ended::Lost(e),
                }
            }
            if readers_changed {
                match refreshed(ctx, &states) {
                    Ok(s) => states = s,
                    Err(e) => return Ended::Lost(e),
                }
            }
            self.report(&states);
        }
    }

    /// Compares the readers now with those last reported, and emits the difference.
    fn report(&mut self, states: &[pcsc::ReaderState]) {
        let mut now: BTreeMap<String, (ReaderStatus, u32)> = BTreeMap::new();
        for rs in states.iter().filter(|rs| !is_pnp(rs)) {
            let ev = rs.event_state();
            if ev.intersects(pcsc::State::UNKNOWN | pcsc::State::IGNORE) {
                continue;
            }
            let name = rs.name().to_string_lossy().into_owned();
            let present = ev.contains(pcsc::State::PRESENT);
            let status = ReaderStatus {
                name: name.clone(),
                card_present: present,
                atr: present.then(|| hex::encode_upper(rs.atr())),
                exclusive: ev.contains(pcsc::State::EXCLUSIVE),
                mute: ev.contains(pcsc::State::MUTE),
            };
            now.insert(name, (status, rs.event_count()));
        }
        let gone: Vec<String> = self
            .known
            .keys()
            .filter(|k| !now.contains_key(*k))
            .cloned()
            .collect();
        for reader in gone {
            if let Some(old) = self.known.remove(&reader) {
                if old.card_present {
                    self.emit(PcscChange::CardRemoved {
                        reader: reader.clone(),
                    });
                }
                self.emit(PcscChange::ReaderRemoved { reader });
            }
        }
        for (name, (status, count)) in now {
            let old = self.known.get(&name).cloned();
            let old_count = self.counts.get(&name).copied();
            match old {
                None => {
                    self.emit(PcscChange::ReaderAdded {
                        reader: name.clone(),
                    });
                    if status.card_present {
                        self.emit_inserted(&name, &status);
                    }
                }
                Some(old) => {
                    // Out and in again within the settle time still means a new insertion (the
                    // card was reset and its login is gone): the event counter tells.
                    let reinserted = old.card_present
                        && status.card_present
                        && (old.atr != status.atr || old_count.is_some_and(|c| c != count));
                    if old.card_present && (!status.card_present || reinserted) {
                        self.emit(PcscChange::CardRemoved {
                            reader: name.clone(),
                        });
                    }
                    if status.card_present && (!old.card_present || reinserted) {
                        self.emit_inserted(&name, &status);
                    }
                }
            }
            self.counts.insert(name.clone(), count);
            self.known.insert(name, status);
        }
        let readers: Vec<ReaderStatus> = self.known.values().cloned().collect();
        self.view.send_if_modified(|v| {
            let changed = v.readers != readers || v.service != PcscService::Up;
            v.readers = readers;
            v.service = PcscService::Up;
            changed
        });
    }

    fn emit_inserted(&self, reader: &str, status: &ReaderStatus) {
        let atr = status
            .atr
            .as_deref()
            .and_then(|a| hex::decode(a).ok())
            .unwrap_or_default();
        self.emit(PcscChange::CardInserted {
            reader: reader.to_owned(),
            atr,
        });
    }

    fn forget_all(&mut self) {
        let known = std::mem::take(&mut self.known);
        self.counts.clear();
        for (reader, status) in known {
            if status.card_present {
                self.emit(PcscChange::CardRemoved {
                    reader: reader.clone(),
                });
            }
            self.emit(PcscChange::ReaderRemoved { reader });
        }
    }
}

fn is_pnp(rs: &pcsc::ReaderState) -> bool {
    rs.name() == pcsc::PNP_NOTIFICATION()
}

fn pnp_changed(states: &[pcsc::ReaderState]) -> bool {
    states
        .iter()
        .any(|rs| is_pnp(rs) && rs.event_state().contains(pcsc::State::CHANGED))
}

fn sync(states: &mut [pcsc::ReaderState]) {
    for rs in states.iter_mut() {
        rs.sync_current_state();
    }
}

/// The reader list again, with the state of readers new to it filled in.
fn refreshed(
    ctx: &pcsc::Context,
    previous: &[pcsc::ReaderState],
) -> Result<Vec<pcsc::ReaderState>, pcsc::Error> {
    let mut states = reader_states(ctx, previous)?;
    match ctx.get_status_change(Duration::ZERO, &mut states) {
        Ok(()) | Err(pcsc::Error::Timeout) | Err(pcsc::Error::UnknownReader) => {}
        Err(e) => return Err(e),
    }
    sync(&mut states);
    Ok(states)
}

/// The PnP pseudo-reader (with its known state, so that it does not fire at once) plus every
/// reader now listed, each to be asked afresh: `report` compares with what it last said, so
/// nothing is reported twice.
fn reader_states(
    ctx: &pcsc::Context,
    previous: &[pcsc::ReaderState],
) -> Result<Vec<pcsc::ReaderState>, pcsc::Error> {
    let names = match ctx.list_readers_owned() {
        Ok(n) => n,
        Err(pcsc::Error::NoReadersAvailable) => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut out = Vec::with_capacity(names.len() + 1);
    let pnp_state = previous
        .iter()
        .find(|rs| is_pnp(rs))
        .map(|rs| rs.current_state())
        .unwrap_or(pcsc::State::UNAWARE);
    out.push(pcsc::ReaderState::new(
        CString::from(pcsc::PNP_NOTIFICATION()),
        pnp_state,
    ));
    for name in names {
        out.push(pcsc::ReaderState::new(name, pcsc::State::UNAWARE));
    }
    Ok(out)
}
