//! Token state as later consumers see it: a table on a `watch` channel (the current view) and
//! every state change on a `broadcast` channel (to react at once, e.g. to drop connections
//! when a token leaves).

use crate::token::error::PinRetries;
use crate::token::models::PinLimits;
use cryptoki::slot::TokenInfo;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;
use tokio::sync::{broadcast, watch};
use ukey_proto::TokenSerial;

/// Where a token stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum TokenState {
    /// Known (seen before) but not in its reader now; its login is gone.
    Absent,
    /// In its reader, not logged in.
    Present,
    /// In its reader with the user logged in: it can sign.
    LoggedIn,
    /// In its reader with the user PIN locked: IT staff must unblock it.
    Locked,
    /// In its reader but not usable, with the reason (e.g. its module stopped answering).
    Error(String),
}

impl TokenState {
    pub fn is_present(&self) -> bool {
        !matches!(self, TokenState::Absent)
    }
}

/// The flags of `CK_TOKEN_INFO` that matter to users and IT staff.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TokenFlags {
    pub token_initialized: bool,
    pub user_pin_initialized: bool,
    pub login_required: bool,
    pub protected_authentication_path: bool,
    pub write_protected: bool,
    pub user_pin_count_low: bool,
    pub user_pin_final_try: bool,
    pub user_pin_locked: bool,
    pub user_pin_to_be_changed: bool,
    pub so_pin_count_low: bool,
    pub so_pin_final_try: bool,
    pub so_pin_locked: bool,
    pub so_pin_to_be_changed: bool,
}

impl TokenFlags {
    pub fn from_info(info: &TokenInfo) -> TokenFlags {
        TokenFlags {
            token_initialized: info.token_initialized(),
            user_pin_initialized: info.user_pin_initialized(),
            login_required: info.login_required(),
            protected_authentication_path: info.protected_authentication_path(),
            write_protected: info.write_protected(),
            user_pin_count_low: info.user_pin_count_low(),
            user_pin_final_try: info.user_pin_final_try(),
            user_pin_locked: info.user_pin_locked(),
            user_pin_to_be_changed: info.user_pin_to_be_changed(),
            so_pin_count_low: info.so_pin_count_low(),
            so_pin_final_try: info.so_pin_final_try(),
            so_pin_locked: info.so_pin_locked(),
            so_pin_to_be_changed: info.so_pin_to_be_changed(),
        }
    }

    pub fn user_retries(&self) -> PinRetries {
        if self.user_pin_locked {
            PinRetries::Locked
        } else if self.user_pin_final_try {
            PinRetries::FinalTry
        } else if self.user_pin_count_low {
            PinRetries::Low
        } else {
            PinRetries::Full
        }
    }
}

/// One token as the daemon knows it. Tokens are keyed by serial, never by slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenStatus {
    pub serial: TokenSerial,
    pub label: String,
    pub manufacturer: String,
    pub model: String,
    /// The PKCS#11 module that serves it.
    pub module: PathBuf,
    /// The PC/SC reader it sits in, for modules that name their slots after readers.
    pub reader: Option<String>,
    pub state: TokenState,
    pub flags: TokenFlags,
    pub retries: PinRetries,
    pub pin: PinLimits,
    /// How many times the token has been seen arriving (first sight counts as 1). A consumer
    /// that holds something tied to one insertion compares this number.
    pub insertion: u64,
}

/// Every token the daemon has seen since it started, by serial.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TokenTable {
    pub tokens: BTreeMap<TokenSerial, TokenStatus>,
}

impl TokenTable {
    pub fn get(&self, serial: &TokenSerial) -> Option<&TokenStatus> {
        self.tokens.get(serial)
    }

    /// Tokens in their readers now.
    pub fn present(&self) -> impl Iterator<Item = &TokenStatus> {
        self.tokens.values().filter(|t| t.state.is_present())
    }
}

/// A token changed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEvent {
    pub serial: TokenSerial,
    /// `None` the first time the token is seen.
    pub previous: Option<TokenState>,
    pub state: TokenState,
    pub insertion: u64,
    /// When the change was published.
    pub at: Instant,
}

/// Owns the two channels and publishes changes to both, in order.
#[derive(Debug)]
pub(crate) struct StateHub {
    table: watch::Sender<TokenTable>,
    events: broadcast::Sender<TokenEvent>,
}

impl StateHub {
    pub(crate) fn new() -> StateHub {
        let (table, _) = watch::channel(TokenTable::default());
        let (events, _) = broadcast::channel(256);
        StateHub { table, events }
    }

    pub(crate) fn subscribe_table(&self) -> watch::Receiver<TokenTable> {
        self.table.subscribe()
    }

    pub(crate) fn subscribe_events(&self) -> broadcast::Receiver<TokenEvent> {
        self.events.subscribe()
    }

    pub(crate) fn snapshot(&self) -> TokenTable {
        self.table.borrow().clone()
    }

    pub(crate) fn state_of(&self, serial: &TokenSerial) -> Option<TokenState> {
        self.table
            .borrow()
            .tokens
            .get(serial)
            .map(|t| t.state.clone())
    }

    /// A token's state and module, without copying the table.
    pub(crate) fn route(&self, serial: &TokenSerial) -> Option<(TokenState, PathBuf)> {
        self.table
            .borrow()
            .tokens
            .get(serial)
            .map(|t| (t.state.clone(), t.module.clone()))
    }

    /// Changes the table (quickly: no token calls in `f`), counts insertions, and publishes
    /// one event per token whose state changed.
    pub(crate) fn modify(&self, f: impl FnOnce(&mut BTreeMap<TokenSerial, TokenStatus>)) {
        let mut events = Vec::new();
        self.table.send_if_modified(|table| {
            let before = table.clone();
            f(&mut table.tokens);
            let now = Instant::now();
            for (serial, status) in table.tokens.iter_mut() {
                let previous = before.tokens.get(serial).map(|t| t.state.clone());
                if previous.as_ref() == Some(&status.state) {
                    continue;
                }
                let arrived =
                    status.state.is_present() && previous.as_ref().is_none_or(|p| !p.is_present());
                if arrived {
                    status.insertion += 1;
                }
                events.push(TokenEvent {
                    serial: serial.clone(),
                    previous,
                    state: status.state.clone(),
                    insertion: status.insertion,
                    at: now,
                });
            }
            *table != before
        });
        for event in events {
            tracing::info!(serial = %event.serial, state = ?event.state, previous = ?event.previous, "token state");
            // No subscriber is fine: the table still holds the state.
            let _ = self.events.send(event);
        }
    }

    /// Sets one token's state, if it is known.
    pub(crate) fn set_state(&self, serial: &TokenSerial, state: TokenState) {
        self.modify(|tokens| {
            if let Some(t) = tokens.get_mut(serial) {
                t.state = state;
            }
        });
    }
}
