//! SoftHSM2 tokens in a private token directory.

use crate::process::run;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// A SoftHSM2 configuration of its own with one or more initialised tokens. Dropping it
/// removes the configuration and every token in it.
#[derive(Debug)]
pub struct SoftToken {
    dir: TempDir,
    conf: PathBuf,
    label: String,
    serial: String,
    so_pin: String,
    user_pin: String,
}

impl SoftToken {
    /// Debian's SoftHSM2 PKCS#11 module.
    pub const MODULE: &'static str = "/usr/lib/softhsm/libsofthsm2.so";
    pub const DEFAULT_SO_PIN: &'static str = "12345678";
    pub const DEFAULT_USER_PIN: &'static str = "123456";

    /// A token labelled `label` with the factory PINs a new U-Key has.
    pub fn new(label: &str) -> SoftToken {
        Self::with_pins(label, Self::DEFAULT_SO_PIN, Self::DEFAULT_USER_PIN)
    }

    pub fn with_pins(label: &str, so_pin: &str, user_pin: &str) -> SoftToken {
        assert!(
            Path::new(Self::MODULE).exists(),
            "SoftHSM2 is not installed ({} missing): run `make setup`",
            Self::MODULE
        );
        let dir = tempfile::Builder::new()
            .prefix("ukey-softhsm-")
            .tempdir()
            .expect("temp dir for SoftHSM2");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).expect("SoftHSM2 token dir");
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .expect("write softhsm2.conf");
        let mut token = SoftToken {
            dir,
            conf,
            label: label.to_owned(),
            serial: String::new(),
            so_pin: so_pin.to_owned(),
            user_pin: user_pin.to_owned(),
        };
        token.serial = token.add_token(label);
        token
    }

    /// Initialises one more token in the same configuration (same PINs) and returns its serial.
    pub fn add_token(&self, label: &str) -> String {
        run(self.util().args([
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            &self.so_pin,
            "--pin",
            &self.user_pin,
        ]));
        self.serial_of(label)
    }

    /// Removes a token from the configuration, as pulling a USB token would (SoftHSM only
    /// notices after `C_Finalize` + `C_Initialize`).
    pub fn remove_token(&self, serial: &str) {
        run(self.util().args(["--delete-token", "--serial", serial]));
    }

    fn serial_of(&self, label: &str) -> String {
        let out = run(self.util().arg("--show-slots"));
        let text = String::from_utf8_lossy(&out.stdout);
        let mut serial = None;
        for line in text.lines().map(str::trim) {
            if let Some(s) = line.strip_prefix("Serial number:") {
                serial = Some(s.trim().to_owned());
            }
            if line
                .strip_prefix("Label:")
                .is_some_and(|l| l.trim() == label)
                && let Some(s) = serial.take()
            {
                return s;
            }
        }
        panic!("token {label:?} not found in softhsm2-util --show-slots:\n{text}")
    }

    fn util(&self) -> Command {
        let mut cmd = Command::new("softhsm2-util");
        cmd.env("SOFTHSM2_CONF", &self.conf);
        cmd
    }

    pub fn module(&self) -> &'static Path {
        Path::new(Self::MODULE)
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// The first token's serial, as `C_GetTokenInfo` reports it (padding removed).
    pub fn serial(&self) -> &str {
        &self.serial
    }

    pub fn so_pin(&self) -> &str {
        &self.so_pin
    }

    pub fn user_pin(&self) -> &str {
        &self.user_pin
    }

    pub fn conf(&self) -> &Path {
        &self.conf
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The environment a process needs to see these tokens, for `Command::envs`.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        vec![("SOFTHSM2_CONF", self.conf.clone().into_os_string())]
    }

    /// Runs `f` with `SOFTHSM2_CONF` pointing at these tokens, for code that loads the module
    /// in this process. SoftHSM reads the variable at every `C_Initialize`.
    pub fn with_env<R>(&self, f: impl FnOnce() -> R) -> R {
        temp_env::with_var("SOFTHSM2_CONF", Some(&self.conf), f)
    }
}
