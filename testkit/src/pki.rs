//! A test PKI made with rcgen at test time: no private key is ever committed.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};
use tempfile::TempDir;
use ukey_proto::{TokenSerial, UnitCode};

/// A CA, a server certificate for `127.0.0.1` and `localhost`, and client certificates, all
/// written as PEM into a private temp dir.
#[derive(Debug)]
pub struct TestPki {
    dir: TempDir,
    ca_params: CertificateParams,
    ca_key: KeyPair,
    ca_pem: String,
    server: ClientCert,
}

/// A certificate with its key, as PEM strings and as files.
#[derive(Debug, Clone)]
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl TestPki {
    pub fn new() -> TestPki {
        let dir = tempfile::Builder::new()
            .prefix("ukey-pki-")
            .tempdir()
            .expect("temp dir for the test PKI");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::OrganizationName, "ukey test");
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "ukey test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign the CA");
        let ca_pem = ca_cert.pem();
        std::fs::write(dir.path().join("ca.pem"), &ca_pem).expect("write ca.pem");

        let mut pki = TestPki {
            dir,
            ca_params,
            ca_key,
            ca_pem,
            server: ClientCert::empty(),
        };
        let server_key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        pki.server = pki.sign("server", params, &server_key);
        pki.server.key_pem = server_key.serialize_pem();
        std::fs::write(&pki.server.key_path, &pki.server.key_pem).expect("write server key");
        pki
    }

    /// A client certificate for a token of `unit`, shaped like the ones ukey issues: clientAuth,
    /// digitalSignature, and the unit and token URIs in subjectAltName.
    pub fn token_client(&self, unit: &UnitCode, serial: &TokenSerial) -> ClientCert {
        let key = KeyPair::generate().expect("client key");
        let mut cert = self.token_client_for_key(unit, serial, &key);
        cert.key_pem = key.serialize_pem();
        std::fs::write(&cert.key_path, &cert.key_pem).expect("write client key");
        cert
    }

    /// As [`token_client`](Self::token_client), for a key made elsewhere (on a token, say).
    pub fn token_client_for_key(
        &self,
        unit: &UnitCode,
        serial: &TokenSerial,
        key: &impl rcgen::SigningKey,
    ) -> ClientCert {
        let mut params = CertificateParams::new(Vec::new()).expect("client params");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{unit} {serial}"));
        params.subject_alt_names = vec![
            SanType::URI(unit.urn().try_into().expect("unit URN is ASCII")),
            SanType::URI(serial.urn().try_into().expect("token URN is ASCII")),
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(&format!("client-{unit}-{serial}"), params, key)
    }

    /// A client certificate with any subject, signed by a CA nobody trusts.
    pub fn untrusted_client() -> (TestPki, ClientCert) {
        let other = TestPki::new();
        let cert = other.token_client(
            &UnitCode::parse("untrusted").expect("code"),
            &TokenSerial::parse("untrusted").expect("serial"),
        );
        (other, cert)
    }

    fn sign(
        &self,
        name: &str,
        params: CertificateParams,
        key: &impl rcgen::SigningKey,
    ) -> ClientCert {
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(key, &issuer).expect("sign certificate");
        let cert_path = self.dir.path().join(format!("{name}.pem"));
        let key_path = self.dir.path().join(format!("{name}.key"));
        std::fs::write(&cert_path, cert.pem()).expect("write certificate");
        ClientCert {
            cert_pem: cert.pem(),
            // Filled in by the caller when the key lives in a file; a token's key has no PEM.
            key_pem: String::new(),
            cert_der: cert.der().to_vec(),
            cert_path,
            key_path,
        }
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn server(&self) -> &ClientCert {
        &self.server
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientCert {
    fn empty() -> ClientCert {
        ClientCert {
            cert_pem: String::new(),
            key_pem: String::new(),
            cert_der: Vec::new(),
            cert_path: PathBuf::new(),
            key_path: PathBuf::new(),
        }
    }
}
