//! Finds the PKCS#11 modules registered with p11-kit (`*.module` files), so that a vendor
//! module installed the usual way is used without configuring its path.

use std::path::{Path, PathBuf};

/// Where distributions and administrators register modules, in increasing priority: a file in
/// a later directory replaces one of the same name in an earlier one.
pub const SYSTEM_MODULE_DIRS: &[&str] = &["/usr/share/p11-kit/modules", "/etc/pkcs11/modules"];

/// Where p11-kit looks for a module given by a relative path.
pub const MODULE_LIBRARY_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/pkcs11",
    "/usr/lib/aarch64-linux-gnu/pkcs11",
    "/usr/lib64/pkcs11",
    "/usr/lib/pkcs11",
];

/// A module registered with p11-kit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredModule {
    /// The file's name without `.module`, e.g. `opensc-pkcs11`.
    pub name: String,
    pub library: PathBuf,
}

/// Reads the `*.module` files in `dirs` and returns the modules ukeyd should load: those not
/// disabled for it, not trust-policy modules (they hold CA certificates, not tokens) and whose
/// library exists.
pub fn discover(dirs: &[PathBuf]) -> Vec<RegisteredModule> {
    let mut by_name: std::collections::BTreeMap<String, Option<RegisteredModule>> =
        std::collections::BTreeMap::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "module"))
            .collect();
        files.sort();
        for file in files {
            let Some(name) = file.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
                continue;
            };
            let parsed = std::fs::read_to_string(&file)
                .ok()
                .and_then(|text| parse(&name, &text));
            if parsed.is_none() {
                tracing::debug!(file = %file.display(), "p11-kit module skipped");
            }
            by_name.insert(name, parsed);
        }
    }
    by_name.into_values().flatten().collect()
}

fn parse(name: &str, text: &str) -> Option<RegisteredModule> {
    let mut module = None;
    let mut usable = true;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let list = || {
            value
                .split([',', ' '])
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        match key.trim() {
            "module" => module = Some(value.to_owned()),
            "trust-policy" if value == "yes" => usable = false,
            "disable-in" if list().any(|p| p == "ukeyd") => usable = false,
            "enable-in" if !list().any(|p| p == "ukeyd") => usable = false,
            _ => {}
        }
    }
    let library = resolve(&module?)?;
    usable.then(|| RegisteredModule {
        name: name.to_owned(),
        library,
    })
}

fn resolve(module: &str) -> Option<PathBuf> {
    let path = Path::new(module);
    if path.is_absolute() {
        return path.exists().then(|| path.to_path_buf());
    }
    MODULE_LIBRARY_DIRS
        .iter()
        .map(|d| Path::new(d).join(path))
        .find(|p| p.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_modules_and_modules_disabled_for_ukeyd_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libvendor.so");
        std::fs::write(&lib, b"").unwrap();
        let write = |name: &str, text: String| {
            std::fs::write(dir.path().join(format!("{name}.module")), text).unwrap()
        };
        write("vendor", format!("# a vendor\nmodule: {}\n", lib.display()));
        write(
            "trust",
            format!("module: {}\ntrust-policy: yes\n", lib.display()),
        );
        write(
            "off",
            format!("module: {}\ndisable-in: ukeyd, firefox\n", lib.display()),
        );
        write(
            "only-ff",
            format!("module: {}\nenable-in: firefox\n", lib.display()),
        );
        write("missing", "module: /nonexistent/libx.so\n".into());
        let found = discover(&[dir.path().to_path_buf()]);
        assert_eq!(
            found,
            vec![RegisteredModule {
                name: "vendor".into(),
                library: lib
            }]
        );
    }

    #[test]
    fn a_later_directory_overrides_a_module_of_the_same_name() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let lib = a.path().join("lib.so");
        std::fs::write(&lib, b"").unwrap();
        std::fs::write(
            a.path().join("m.module"),
            format!("module: {}\n", lib.display()),
        )
        .unwrap();
        std::fs::write(
            b.path().join("m.module"),
            format!("module: {}\ndisable-in: ukeyd\n", lib.display()),
        )
        .unwrap();
        assert!(discover(&[a.path().to_path_buf(), b.path().to_path_buf()]).is_empty());
    }
}
