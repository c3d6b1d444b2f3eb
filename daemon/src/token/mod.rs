//! The token layer: PC/SC hotplug, PKCS#11 tokens and a rustls signer on a token key.
//!
//! Start with [`TokenManager::start`]: it loads the PKCS#11 modules (configured paths and
//! those registered with p11-kit), runs one owner thread per module and a PC/SC monitor
//! thread, and publishes every token's [`TokenState`] on channels. Operations go through the
//! manager by token serial; [`TokenKey`] is a key on a token that signs (for rcgen CSRs and
//! certificates too), and [`TokenCertResolver`] makes it a rustls client certificate.

mod algorithms;
mod error;
mod key;
mod manager;
pub mod models;
mod module;
mod objects;
mod ops;
pub mod p11kit;
mod pcsc_monitor;
mod signer;
mod state;
pub mod uri;

pub use algorithms::{Curve, KeyKind, SignAlgorithm, ecdsa_raw_to_der};
pub use error::{PinRetries, Pkcs11Failure, TokenError, ckr_name};
pub use key::TokenKey;
pub use manager::{TokenConfig, TokenManager};
pub use models::{LimitSource, PinLimits};
pub use module::{ModuleReport, Role};
pub use objects::{CertDetails, CertInfo, KeyInfo, PublicKey, TokenObjects};
pub use ops::{KeySpec, LoginOptions, LoginOutcome, PinChangeReason};
pub use pcsc_monitor::{
    MonitorConfig, PcscChange, PcscEvent, PcscMonitor, PcscService, PcscView, ReaderStatus,
};
pub use signer::{SignerMetrics, SignerProblem, TokenCertResolver, TokenSigningKey, token_error};
pub use state::{TokenEvent, TokenFlags, TokenState, TokenStatus, TokenTable};
pub use uri::{Pkcs11Uri, UriError};
