//! What `ukey-ca` prints: text for people, `--json` for scripts. Data goes to standard
//! output; a certificate printed to standard output moves its summary to standard error.

use anyhow::Result;
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use ukey_certs::store::{CaStore, IndexEntry};
use ukey_certs::{CertificateInfo, CheckedCsr, ClientIdentity, Crl, CrlInfo};

pub struct Output {
    pub json: bool,
}

fn t(time: OffsetDateTime) -> String {
    time.format(&Rfc3339).unwrap_or_else(|_| time.to_string())
}

fn print_json(value: &impl serde::Serialize) -> Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(ExitCode::SUCCESS)
}

impl Output {
    pub fn init(&self, store: &CaStore) -> Result<ExitCode> {
        let ca = store.ca();
        if self.json {
            return print_json(&json!({
                "dir": ca.paths().dir,
                "root": ca.root_info(),
                "issuing": ca.issuing_info(),
                "settings": store.settings(),
                "crl": store.crl_path(),
            }));
        }
        let p = ca.paths();
        println!("Created a CA in {}", p.dir.display());
        for (what, info, cert, key) in [
            ("root", ca.root_info(), &p.root_cert, &p.root_key),
            (
                "issuing",
                ca.issuing_info(),
                &p.issuing_cert,
                &p.issuing_key,
            ),
        ] {
            println!(
                "  {what:8} {}\n           {} until {}\n           {} (key {})",
                info.subject,
                info.key_algorithm,
                t(info.not_after),
                cert.display(),
                key.display()
            );
        }
        println!("  chain    {}", p.chain.display());
        println!("  CRL      {}", store.crl_path().display());
        println!(
            "The root key is needed only to make a new issuing CA: keep {} offline.",
            p.root_key.display()
        );
        Ok(ExitCode::SUCCESS)
    }

    pub fn issued(
        &self,
        entry: &IndexEntry,
        pem: Option<&str>,
        files: &[&Path],
    ) -> Result<ExitCode> {
        if self.json {
            return print_json(&json!({ "certificate": entry, "pem": pem, "files": files }));
        }
        println!("{}", summary(entry));
        for file in files {
            println!("  wrote {}", file.display());
        }
        Ok(ExitCode::SUCCESS)
    }

    pub fn issued_to_stdout(&self, entry: &IndexEntry, pem: &str) -> Result<ExitCode> {
        if self.json {
            return print_json(&json!({ "certificate": entry, "pem": pem }));
        }
        eprintln!("{}", summary(entry));
        print!("{pem}");
        Ok(ExitCode::SUCCESS)
    }

    pub fn revoked(&self, entry: &IndexEntry, crl: &Crl, crl_path: &Path) -> Result<ExitCode> {
        if self.json {
            return print_json(
                &json!({ "certificate": entry, "crl": crl.info, "crl_file": crl_path }),
            );
        }
        let reason = entry
            .revoked
            .as_ref()
            .map(|r| r.reason.to_string())
            .unwrap_or_default();
        println!("Revoked {} ({reason})", summary(entry));
        self.crl(&crl.info, Some(crl_path))
    }

    pub fn crl(&self, info: &CrlInfo, path: Option<&Path>) -> Result<ExitCode> {
        if self.json {
            return print_json(&json!({ "crl": info, "file": path }));
        }
        let number = info.number.map_or("-".to_owned(), |n| n.to_string());
        let next = info.next_update.map_or("-".to_owned(), t);
        match path {
            Some(p) => println!("CRL #{number} written to {}", p.display()),
            None => println!("CRL #{number} from {}", info.issuer),
        }
        println!(
            "  this update {}\n  next update {next}\n  {} revoked",
            t(info.this_update),
            info.entries.len()
        );
        for e in &info.entries {
            let reason = e
                .reason
                .map_or("no reason given".to_owned(), |r| r.to_string());
            println!("    {}  {}  {reason}", e.serial, t(e.revoked_at));
        }
        Ok(ExitCode::SUCCESS)
    }

    pub fn list(&self, entries: &[IndexEntry], now: OffsetDateTime) -> Result<ExitCode> {
        if self.json {
            let rows: Vec<_> = entries
                .iter()
                .map(|e| json!({ "status": e.status(now), "certificate": e }))
                .collect();
            return print_json(&rows);
        }
        if entries.is_empty() {
            println!("No certificates issued yet.");
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "{:<32}  {:<7}  {:<7}  {:<20}  WHO",
            "SERIAL", "PROFILE", "STATUS", "NOT AFTER"
        );
        for e in entries {
            let profile = match e.profile {
                ukey_certs::store::ProfileKind::Token => "token",
                ukey_certs::store::ProfileKind::Server => "server",
            };
            println!(
                "{:<32}  {profile:<7}  {:<7}  {:<20}  {}",
                e.serial.to_string(),
                e.status(now),
                t(e.not_after),
                who(e)
            );
        }
        Ok(ExitCode::SUCCESS)
    }

    pub fn show(&self, bytes: &[u8], now: OffsetDateTime) -> Result<ExitCode> {
        match kind_of(bytes) {
            Kind::Certificate => {
                self.show_certificate(&CertificateInfo::from_pem_or_der(bytes)?, now)
            }
            Kind::Csr => self.show_csr(bytes),
            Kind::Crl => self.crl(&CrlInfo::from_pem_or_der(bytes)?, None),
            Kind::Unknown(what) => anyhow::bail!(
                "not a certificate, CSR or CRL{}",
                what.map(|w| format!(" (PEM block {w})"))
                    .unwrap_or_default()
            ),
        }
    }

    fn show_certificate(&self, info: &CertificateInfo, now: OffsetDateTime) -> Result<ExitCode> {
        let identity = ClientIdentity::from_info(info.clone()).ok();
        if self.json {
            return print_json(&json!({
                "kind": "certificate",
                "certificate": info,
                "unit": identity.as_ref().map(|i| &i.unit),
                "token": identity.as_ref().map(|i| &i.token),
            }));
        }
        let validity = if now < info.not_before {
            "not yet valid"
        } else if now >= info.not_after {
            "expired"
        } else {
            "valid"
        };
        println!("Certificate {}", info.serial);
        println!("  subject     {}", info.subject);
        println!("  issuer      {}", info.issuer);
        println!(
            "  validity    {} to {} ({validity})",
            t(info.not_before),
            t(info.not_after)
        );
        println!("  key         {}", info.key_algorithm);
        println!(
            "  fingerprint {} (SHA-256 of the public key)",
            info.spki_fingerprint
        );
        if info.is_ca {
            let len = info
                .path_len
                .map_or("unlimited".to_owned(), |n| n.to_string());
            println!("  CA          yes, path length {len}");
        }
        if let Some(ku) = &info.key_usage {
            println!("  key usage   {}", names(ku));
        }
        if let Some(eku) = &info.extended_key_usage {
            println!("  ext. usage  {}", names(eku));
        }
        for dns in &info.dns_names {
            println!("  DNS         {dns}");
        }
        for ip in &info.ip_addresses {
            println!("  IP          {ip}");
        }
        for uri in &info.uris {
            println!("  URI         {uri}");
        }
        if let Some(id) = identity {
            println!("  token {} of unit {}", id.token, id.unit);
        }
        Ok(ExitCode::SUCCESS)
    }

    fn show_csr(&self, bytes: &[u8]) -> Result<ExitCode> {
        match CheckedCsr::parse(bytes) {
            Ok(csr) => {
                if self.json {
                    return print_json(&json!({
                        "kind": "csr",
                        "acceptable": true,
                        "requested_subject": csr.requested_subject(),
                        "key_algorithm": csr.key_algorithm(),
                        "spki_fingerprint": csr.fingerprint(),
                    }));
                }
                println!("Certificate request (acceptable)");
                println!("  subject asked {}", csr.requested_subject());
                println!("  key           {}", csr.key_algorithm());
                println!(
                    "  fingerprint   {} (SHA-256 of the public key)",
                    csr.fingerprint()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(refusal) => {
                if self.json {
                    print_json(&json!({
                        "kind": "csr",
                        "acceptable": false,
                        "refusal": refusal.to_string(),
                    }))?;
                } else {
                    println!("Certificate request (would be refused)\n  {refusal}");
                }
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

fn names<T: serde::Serialize>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| match serde_json::to_value(i) {
            Ok(serde_json::Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(_) => "?".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn who(e: &IndexEntry) -> String {
    match (&e.unit, &e.token) {
        (Some(u), Some(t)) => format!("unit {u}, token {t}"),
        _ if !e.names.is_empty() => e.names.join(", "),
        _ => e.subject.clone(),
    }
}

fn summary(e: &IndexEntry) -> String {
    format!(
        "certificate {} for {} (until {}, SPKI SHA-256 {})",
        e.serial,
        who(e),
        t(e.not_after),
        e.fingerprint
    )
}

enum Kind {
    Certificate,
    Csr,
    Crl,
    Unknown(Option<String>),
}

fn kind_of(bytes: &[u8]) -> Kind {
    let text = bytes.trim_ascii_start();
    if text.starts_with(b"-----BEGIN") {
        return match pem::parse(text).map(|p| p.tag().to_owned()) {
            Ok(tag) if tag == "CERTIFICATE" => Kind::Certificate,
            Ok(tag) if tag.ends_with("CERTIFICATE REQUEST") => Kind::Csr,
            Ok(tag) if tag == "X509 CRL" => Kind::Crl,
            Ok(tag) => Kind::Unknown(Some(tag)),
            Err(_) => Kind::Unknown(None),
        };
    }
    if CertificateInfo::from_der(bytes).is_ok() {
        Kind::Certificate
    } else if CrlInfo::from_der(bytes).is_ok() {
        Kind::Crl
    } else {
        // Anything else is handed to the CSR checker, whose error says what is wrong.
        Kind::Csr
    }
}
