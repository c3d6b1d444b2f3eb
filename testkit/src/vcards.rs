//! Virtual PIV cards behind a private pcscd: the real PC/SC path, with hotplug.

use crate::process::{have_program, is_root, run, unavailable, workspace_root};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// N virtual PIV cards in N virtual readers, served by a pcscd private to this value (its own
/// `VTOKEN_DIR`, mount namespace and socket). The cards keep their keys, PINs and serials
/// across [`unplug`](Self::unplug)/[`plug`](Self::plug) and [`restart`](Self::restart), as USB
/// tokens do. Dropping it stops the pcscd and wipes the cards.
#[derive(Debug)]
pub struct VirtualCards {
    dir: TempDir,
    script: PathBuf,
    count: usize,
}

impl VirtualCards {
    /// Debian's Yubico PIV PKCS#11 module, which drives the virtual cards.
    pub const YKCS11: &'static str = "/usr/lib/x86_64-linux-gnu/libykcs11.so";
    /// OpenSC's PKCS#11 module, which also speaks PIV.
    pub const OPENSC: &'static str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";
    pub const FACTORY_PIN: &'static str = "123456";
    pub const FACTORY_PUK: &'static str = "12345678";
    /// The PIV management key, which ykcs11 takes as the SO PIN.
    pub const FACTORY_SO_PIN: &'static str = "010203040506070801020304050607080102030405060708";
    /// PIV slot 9a (authentication) as ykcs11 names it: `CKA_ID` 01.
    pub const AUTH_KEY_ID: u8 = 0x01;

    /// Starts `count` factory-fresh cards, or returns `None` (after printing why) where this
    /// machine cannot run them; under `CI=true` that is a test failure instead.
    pub fn up(count: usize) -> Option<VirtualCards> {
        let script = Self::script()?;
        if !is_root() {
            return unavailable(
                "virtual cards need root (pcscd runs in a private mount namespace)",
            );
        }
        for (program, package) in [
            ("pcscd", "pcscd"),
            ("opensc-tool", "opensc"),
            ("unshare", "util-linux"),
        ] {
            if !have_program(program) && !Path::new(&format!("/usr/sbin/{program}")).exists() {
                return unavailable(&format!(
                    "{program} is not installed (Debian package {package}): run `make setup`"
                ));
            }
        }
        // pcscd hard-codes /run/pcscd; vtoken.sh mounts its private socket dir over it.
        if !Path::new("/run/pcscd").is_dir() {
            return unavailable(
                "/run/pcscd does not exist (no system pcscd has run here): run `make setup`",
            );
        }
        if !Path::new(Self::YKCS11).exists() {
            return unavailable("ykcs11 is not installed: run `make setup`");
        }
        let dir = tempfile::Builder::new()
            .prefix("ukey-vtoken-")
            .tempdir()
            .expect("temp dir for virtual cards");
        let cards = VirtualCards { dir, script, count };
        cards.vtoken(&["up", &count.to_string()]);
        Some(cards)
    }

    fn script() -> Option<PathBuf> {
        let script = std::env::var_os("UKEY_VTOKEN")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("tools/vtoken/vtoken.sh"));
        if script.exists() {
            Some(script)
        } else {
            unavailable(&format!(
                "virtual token tool not found at {}",
                script.display()
            ))
        }
    }

    fn vtoken(&self, args: &[&str]) -> String {
        let out = run(Command::new("bash")
            .arg(&self.script)
            .args(args)
            .env("VTOKEN_DIR", self.dir.path())
            .env_remove("PCSCLITE_CSOCK_NAME"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Pulls card `index` out of its reader; returns once PC/SC reports it gone.
    pub fn unplug(&self, index: usize) -> String {
        self.vtoken(&["unplug", &index.to_string()])
    }

    /// Inserts card `index` again; returns once PC/SC reports it present.
    pub fn plug(&self, index: usize) -> String {
        self.vtoken(&["plug", &index.to_string()])
    }

    /// Stops the private pcscd and starts it again. Cards keep their state; clients see a
    /// transport error and must re-establish their PC/SC context.
    pub fn restart(&self) -> String {
        self.vtoken(&["restart"])
    }

    /// Readers and tokens as `opensc-tool` and ykcs11 see them.
    pub fn status(&self) -> String {
        self.vtoken(&["status"])
    }

    /// The socket of the private pcscd.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("pcscd").join("pcscd.comm")
    }

    /// The reader name of card `index`.
    pub fn reader_name(&self, index: usize) -> String {
        format!("Yubico YubiKey jcecard {index}")
    }

    /// The environment a PC/SC client needs to reach these cards, for `Command::envs`.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        vec![("PCSCLITE_CSOCK_NAME", self.socket().into_os_string())]
    }

    /// Runs `f` with `PCSCLITE_CSOCK_NAME` pointing at this pcscd. libpcsclite reads it once per
    /// process, at the first PC/SC call, so a test process talks to one pcscd only.
    pub fn with_env<R>(&self, f: impl FnOnce() -> R) -> R {
        temp_env::with_var("PCSCLITE_CSOCK_NAME", Some(self.socket()), f)
    }
}

impl Drop for VirtualCards {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg("down")
            .env("VTOKEN_DIR", self.dir.path())
            .output();
    }
}
