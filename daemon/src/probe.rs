//! `ukeyd probe`: what the daemon sees — readers, cards, modules, tokens (serial, label, flags,
//! retries, PIN limits) and their key and certificate objects — printed once. IT staff use it
//! to diagnose a token; tests use it as a black box.

use crate::token::{
    ModuleReport, PcscService, PcscView, TokenConfig, TokenError, TokenManager, TokenObjects,
    TokenState, TokenStatus,
};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// What to probe.
#[derive(Debug, Clone, Default)]
pub struct ProbeOptions {
    /// Modules to load; when empty, those registered with p11-kit.
    pub modules: Vec<PathBuf>,
    /// Also load the p11-kit modules when `modules` is not empty.
    pub p11kit: bool,
    /// Skip PC/SC.
    pub no_pcsc: bool,
}

/// A token and what it holds (public objects; private keys need a login).
#[derive(Debug, Clone, Serialize)]
pub struct ProbedToken {
    #[serde(flatten)]
    pub status: TokenStatus,
    pub objects: Option<TokenObjects>,
    /// Why the objects could not be listed.
    pub objects_error: Option<String>,
}

/// Everything `ukeyd probe` reports.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub pcsc: PcscView,
    pub modules: Vec<ModuleReport>,
    pub tokens: Vec<ProbedToken>,
}

/// Loads the modules, looks once, and stops.
pub fn probe(options: &ProbeOptions) -> Result<ProbeReport, TokenError> {
    let mut config = if options.modules.is_empty() || options.p11kit {
        TokenConfig {
            modules: options.modules.clone(),
            ..TokenConfig::default()
        }
    } else {
        TokenConfig::with_modules(options.modules.clone())
    };
    config.pcsc = !options.no_pcsc;
    // One look: no background polling while we read.
    config.poll_interval = Duration::from_secs(3600);
    let manager = TokenManager::start(config)?;
    let pcsc = manager.pcsc().borrow().clone();
    let mut tokens = Vec::new();
    for status in manager.tokens().tokens.into_values() {
        let (objects, objects_error) = if status.state == TokenState::Absent {
            (None, None)
        } else {
            match manager.objects(&status.serial) {
                Ok(o) => (Some(o), None),
                Err(e) => (None, Some(e.to_string())),
            }
        };
        tokens.push(ProbedToken {
            status,
            objects,
            objects_error,
        });
    }
    Ok(ProbeReport {
        pcsc,
        modules: manager.modules(),
        tokens,
    })
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The report as text for people.
pub fn render_text(report: &ProbeReport) -> String {
    let mut out = String::new();
    let _ = match &report.pcsc.service {
        PcscService::Up => writeln!(out, "PC/SC: up, {} reader(s)", report.pcsc.readers.len()),
        PcscService::Unavailable(why) => writeln!(out, "PC/SC: not available ({why})"),
        PcscService::Disabled => writeln!(out, "PC/SC: not used"),
        PcscService::Starting => writeln!(out, "PC/SC: no answer yet"),
    };
    for r in &report.pcsc.readers {
        let card = match (&r.card_present, &r.atr) {
            (true, Some(atr)) => format!("card present, ATR {atr}"),
            (true, None) => "card present".into(),
            (false, _) => "no card".into(),
        };
        let _ = writeln!(out, "  reader {:?}: {card}", r.name);
    }
    let _ = writeln!(out, "Modules:");
    for m in &report.modules {
        match &m.error {
            Some(e) => {
                let _ = writeln!(out, "  {}: ERROR {e}", m.path.display());
            }
            None => {
                let _ = writeln!(
                    out,
                    "  {}: {} {} ({})",
                    m.path.display(),
                    m.library_description.as_deref().unwrap_or("?"),
                    m.version.as_deref().unwrap_or("?"),
                    m.manufacturer.as_deref().unwrap_or("?"),
                );
            }
        }
    }
    let _ = writeln!(out, "Tokens: {}", report.tokens.len());
    for t in &report.tokens {
        render_token(&mut out, t);
    }
    out
}

fn render_token(out: &mut String, t: &ProbedToken) {
    let s = &t.status;
    let _ = writeln!(
        out,
        "  token {} {:?}: {} / {}",
        s.serial, s.label, s.manufacturer, s.model
    );
    let state = match &s.state {
        TokenState::Absent => "absent".to_owned(),
        TokenState::Present => "present".to_owned(),
        TokenState::LoggedIn => "logged in".to_owned(),
        TokenState::Locked => "PIN LOCKED (IT staff must unblock it)".to_owned(),
        TokenState::Error(e) => format!("error: {e}"),
    };
    let _ = writeln!(out, "    state: {state}");
    let _ = writeln!(out, "    module: {}", s.module.display());
    if let Some(reader) = &s.reader {
        let _ = writeln!(out, "    reader: {reader}");
    }
    let _ = writeln!(
        out,
        "    PIN: {} to {} characters ({}; module reports {} to {}); tries: {}",
        s.pin.effective.min_len,
        s.pin.effective.max_len,
        s.pin.source,
        s.pin.reported_min,
        s.pin.reported_max,
        s.retries
    );
    let f = &s.flags;
    let _ = writeln!(
        out,
        "    flags: initialised {}, user PIN set {}, login required {}, PIN count low {}, final try {}, locked {}, to be changed {}, SO PIN locked {}",
        yes(f.token_initialized),
        yes(f.user_pin_initialized),
        yes(f.login_required),
        yes(f.user_pin_count_low),
        yes(f.user_pin_final_try),
        yes(f.user_pin_locked),
        yes(f.user_pin_to_be_changed),
        yes(f.so_pin_locked),
    );
    if let Some(e) = &t.objects_error {
        let _ = writeln!(out, "    objects: could not be listed: {e}");
    }
    let Some(objects) = &t.objects else {
        return;
    };
    for k in &objects.keys {
        let kind = k.kind.map_or("unknown type".to_owned(), |k| k.to_string());
        let what = if k.has_private {
            "key pair"
        } else {
            "public key"
        };
        let _ = writeln!(
            out,
            "    {what} id {} {:?}: {kind}, generated on the token {}, extractable {}",
            hex::encode(&k.id),
            k.label,
            k.local.map_or("?", yes),
            k.extractable.map_or("?", yes),
        );
    }
    for c in &objects.certificates {
        match &c.details {
            Ok(d) => {
                let _ = writeln!(
                    out,
                    "    certificate id {} {:?}: subject {}, issuer {}, serial {}, valid {} to {}{}",
                    hex::encode(&c.id),
                    c.label,
                    d.subject,
                    d.issuer,
                    d.serial,
                    d.not_before,
                    d.not_after,
                    d.unit
                        .as_ref()
                        .map(|u| format!(", unit {u}"))
                        .unwrap_or_default(),
                );
            }
            Err(e) => {
                let _ = writeln!(
                    out,
                    "    certificate id {} {:?}: unreadable ({e})",
                    hex::encode(&c.id),
                    c.label
                );
            }
        }
    }
}
