//! The rustls signer: TLS 1.3 client-certificate handshakes with an in-test rustls server.

use crate::support::*;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use ukey_testkit::{SoftToken, TestPki, VirtualCards};
use ukeyd::token::{
    KeySpec, LoginOptions, SignerProblem, TokenCertResolver, TokenError, TokenKey, TokenState,
    token_error,
};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(pki: &TestPki) -> Arc<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pki.ca_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(roots)
}

/// A client verifier that asks only for the given signature schemes.
#[derive(Debug)]
struct OnlySchemes(Arc<dyn ClientCertVerifier>, Vec<SignatureScheme>);

impl ClientCertVerifier for OnlySchemes {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        e: &CertificateDer<'_>,
        i: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0.verify_client_cert(e, i, now)
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.1.clone()
    }
}

/// A TLS 1.3 server requiring a client certificate from the test CA; reports each client's
/// certificate and answers "ok".
async fn server(
    pki: &TestPki,
    only: Option<Vec<SignatureScheme>>,
) -> (SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>) {
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut pki.server().cert_pem.as_bytes())
            .map(|c| c.unwrap())
            .collect();
    let key = rustls_pemfile::private_key(&mut pki.server().key_pem.as_bytes())
        .unwrap()
        .unwrap();
    let mut verifier: Arc<dyn ClientCertVerifier> =
        WebPkiClientVerifier::builder_with_provider(roots(pki), provider())
            .build()
            .unwrap();
    if let Some(schemes) = only {
        verifier = Arc::new(OnlySchemes(verifier, schemes));
    }
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let peer = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| c.to_vec());
                    let _ = tx.send(peer.unwrap_or_default());
                    let _ = tls.write_all(b"ok").await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    (addr, rx)
}

/// One TLS 1.3 handshake with the token's certificate; Ok once the server has accepted it.
async fn handshake(
    addr: SocketAddr,
    pki: &TestPki,
    resolver: Arc<TokenCertResolver>,
) -> std::io::Result<()> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots(pki))
        .with_client_cert_resolver(resolver);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let run = async {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let mut tls = connector
            .connect("localhost".try_into().unwrap(), tcp)
            .await?;
        let mut answer = [0u8; 2];
        tls.read_exact(&mut answer).await?;
        assert_eq!(&answer, b"ok");
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("a handshake never hangs")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn handshake_with_soft_key(spec: KeySpec, expected: SignatureScheme) {
    let token = SoftToken::new("tls");
    let pki = TestPki::new();
    token.with_env(|| {
        let manager = soft_manager();
        let key = provision_soft(&manager, &token, spec, &pki);
        let resolver = Arc::new(TokenCertResolver::new(key.clone(), Vec::new()).unwrap());
        assert_eq!(resolver.signing_key().schemes()[0], expected);
        assert!(resolver.signing_key().tls13_capable());
        runtime().block_on(async {
            let (addr, mut seen) = server(&pki, None).await;
            handshake(addr, &pki, resolver.clone()).await.unwrap();
            let presented = seen.recv().await.unwrap();
            assert_eq!(
                presented,
                key.certificate().unwrap().der,
                "the server sees the token's certificate"
            );
        });
        assert_eq!(resolver.metrics().signatures(), 1);
        assert_eq!(resolver.metrics().failures(), 0);
    });
}

#[test]
fn the_signer_completes_a_tls13_client_certificate_handshake_with_an_ec_key() {
    handshake_with_soft_key(KeySpec::EcP256, SignatureScheme::ECDSA_NISTP256_SHA256);
}

#[test]
fn the_signer_completes_a_tls13_client_certificate_handshake_with_an_rsa_key() {
    handshake_with_soft_key(KeySpec::Rsa2048, SignatureScheme::RSA_PSS_SHA256);
}

#[test]
fn a_server_asking_only_for_schemes_the_token_cannot_make_is_reported_not_silently_ignored() {
    let token = SoftToken::new("schemes");
    let pki = TestPki::new();
    token.with_env(|| {
        let manager = soft_manager();
        let key = provision_soft(&manager, &token, KeySpec::EcP256, &pki);
        let resolver = Arc::new(TokenCertResolver::new(key, Vec::new()).unwrap());
        let only = vec![
            SignatureScheme::ECDSA_NISTP384_SHA384,
            SignatureScheme::RSA_PSS_SHA256,
        ];
        runtime().block_on(async {
            let (addr, _seen) = server(&pki, Some(only.clone())).await;
            assert!(handshake(addr, &pki, resolver.clone()).await.is_err());
        });
        let metrics = resolver.metrics();
        assert_eq!(metrics.no_common_scheme(), 1);
        assert_eq!(metrics.signatures(), 0);
        match metrics.last_problem() {
            Some(SignerProblem::NoCommonScheme { offered, supported }) => {
                assert_eq!(offered, only);
                assert_eq!(supported, vec![SignatureScheme::ECDSA_NISTP256_SHA256]);
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn a_card_pulled_between_two_handshakes_fails_the_next_with_a_typed_error_and_works_after_reinsert_and_login()
 {
    let Some(cards) = VirtualCards::up(1) else {
        return;
    };
    let pki = TestPki::new();
    cards.with_env(|| {
        let manager = cards_manager();
        let s = present_serials(&manager).pop().expect("the card is listed");
        let key: TokenKey = provision_card(&manager, &s, KeySpec::EcP256, &pki);
        let resolver = Arc::new(TokenCertResolver::new(key, Vec::new()).unwrap());
        let rt = runtime();
        let (addr, _seen) = rt.block_on(server(&pki, None));
        rt.block_on(handshake(addr, &pki, resolver.clone()))
            .unwrap();

        cards.unplug(0);
        wait(&manager, "card absent", Duration::from_secs(1), |t| {
            t.get(&s).is_some_and(|x| x.state == TokenState::Absent)
        });
        let err = rt
            .block_on(handshake(addr, &pki, resolver.clone()))
            .unwrap_err();
        let typed = token_error(&err).unwrap_or_else(|| panic!("no token error in {err:?}"));
        assert!(matches!(typed, TokenError::TokenAbsent { .. }), "{typed:?}");
        assert!(typed.token_gone());

        cards.plug(0);
        wait(&manager, "card present", Duration::from_secs(5), |t| {
            t.get(&s).is_some_and(|x| x.state == TokenState::Present)
        });
        let err = rt
            .block_on(handshake(addr, &pki, resolver.clone()))
            .unwrap_err();
        assert_eq!(
            token_error(&err).map(TokenError::code),
            Some("not_logged_in")
        );
        manager
            .login(
                &s,
                secret(VirtualCards::FACTORY_PIN),
                LoginOptions::default(),
            )
            .unwrap();
        rt.block_on(handshake(addr, &pki, resolver.clone()))
            .unwrap();
        assert_eq!(resolver.metrics().signatures(), 2);
        assert_eq!(resolver.metrics().failures(), 2);
    });
}
