//! Known token models whose modules misreport their PIN limits. ykcs11, for one, reports a
//! maximum of 48 for PIV PINs that the card itself refuses beyond 8: setting a longer PIN
//! fails late with `CKR_PIN_LEN_RANGE`, and logging in with one spends a try. The table
//! narrows what the module reports; it never widens it.

use serde::Serialize;
use ukey_proto::{PinCharset, PinConstraints};

/// A token model, matched on what `C_GetTokenInfo` reports.
#[derive(Debug, Clone, Copy)]
pub struct KnownModel {
    /// Shown to users in errors, e.g. "YubiKey PIV".
    pub name: &'static str,
    manufacturer_prefix: &'static str,
    model_prefix: &'static str,
    pub min_pin: usize,
    pub max_pin: usize,
    pub charset: PinCharset,
    /// How a locked user PIN is unblocked.
    pub unblock: UnblockMethod,
}

/// How IT staff unblock a locked user PIN on this model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnblockMethod {
    /// `C_Login(CKU_SO)` + `C_InitPIN`: the PKCS#11 way.
    SoInitPin,
    /// ykcs11: `C_SetPIN` in a R/W session without login, old `puk:<PUK>`, new `pin:<PIN>`.
    Ykcs11Puk,
}

const KNOWN: &[KnownModel] = &[
    // Yubico's ykcs11 on a PIV applet (YubiKeys, and the virtual cards in tests): the PIV PIN
    // is 6 to 8 bytes; YubiKeys take any ASCII in it.
    KnownModel {
        name: "YubiKey PIV (ykcs11)",
        manufacturer_prefix: "Yubico",
        model_prefix: "YubiKey",
        min_pin: 6,
        max_pin: 8,
        charset: PinCharset::PrintableAscii,
        unblock: UnblockMethod::Ykcs11Puk,
    },
    // OpenSC's PIV driver: SP 800-73 PIV PINs are 6 to 8 digits.
    KnownModel {
        name: "PIV card (OpenSC)",
        manufacturer_prefix: "piv_II",
        model_prefix: "PKCS#15 emulated",
        min_pin: 6,
        max_pin: 8,
        charset: PinCharset::Digits,
        unblock: UnblockMethod::SoInitPin,
    },
];

/// Where a token's effective PIN limits come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum LimitSource {
    /// What the module reported.
    Module,
    /// The module's report narrowed by the table of known models.
    KnownModel { name: &'static str },
}

impl std::fmt::Display for LimitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitSource::Module => f.write_str("as its module reports"),
            LimitSource::KnownModel { name } => write!(f, "the real limit of a {name}"),
        }
    }
}

/// The PIN limits ukeyd enforces for a token, with what the module claimed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PinLimits {
    pub reported_min: usize,
    pub reported_max: usize,
    /// The limits that apply (what PIN checks and the PIN policy use).
    pub effective: PinConstraints,
    pub source: LimitSource,
}

/// Looks up a token model by manufacturer and model as PKCS#11 reports them.
pub fn known_model(manufacturer: &str, model: &str) -> Option<&'static KnownModel> {
    KNOWN.iter().find(|k| {
        manufacturer.trim().starts_with(k.manufacturer_prefix)
            && model.trim().starts_with(k.model_prefix)
    })
}

/// The limits to enforce for a token: the module's report, narrowed by the known model.
pub fn pin_limits(
    manufacturer: &str,
    model: &str,
    reported_min: usize,
    reported_max: usize,
) -> PinLimits {
    // Some modules report 0 or absurd values; keep them sane before narrowing.
    let module_min = reported_min.max(1);
    let module_max = if reported_max == 0 || reported_max >= 1024 {
        ukey_proto::MAX_SECRET_BYTES
    } else {
        reported_max.max(module_min)
    };
    match known_model(manufacturer, model) {
        Some(k) => PinLimits {
            reported_min,
            reported_max,
            effective: PinConstraints {
                min_len: module_min.max(k.min_pin),
                max_len: module_max.min(k.max_pin).max(module_min.max(k.min_pin)),
                charset: k.charset,
            },
            source: LimitSource::KnownModel { name: k.name },
        },
        None => PinLimits {
            reported_min,
            reported_max,
            effective: PinConstraints {
                min_len: module_min,
                max_len: module_max,
                charset: PinCharset::PrintableAscii,
            },
            source: LimitSource::Module,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ykcs11s_reported_48_is_narrowed_to_the_piv_cards_8() {
        let limits = pin_limits("Yubico (www.yubico.com)", "YubiKey XXX", 6, 48);
        assert_eq!(limits.effective.min_len, 6);
        assert_eq!(limits.effective.max_len, 8);
        assert_eq!(limits.reported_max, 48);
        assert!(matches!(limits.source, LimitSource::KnownModel { .. }));
    }

    #[test]
    fn an_unknown_model_keeps_what_its_module_reports() {
        let limits = pin_limits("SoftHSM project", "SoftHSM v2", 4, 255);
        assert_eq!(
            (limits.effective.min_len, limits.effective.max_len),
            (4, 255)
        );
        assert_eq!(limits.source, LimitSource::Module);
    }

    #[test]
    fn the_table_never_widens_a_modules_limits() {
        let limits = pin_limits("Yubico", "YubiKey 5", 6, 7);
        assert_eq!(limits.effective.max_len, 7);
    }
}
