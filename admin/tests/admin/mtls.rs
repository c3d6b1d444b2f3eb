//! The token API over real mutual TLS: certificates from the test PKI (rustls client) and a
//! key on a SoftHSM token (curl with the PKCS#11 engine).

use crate::support::{Store, TestServer, TlsClient, audited, code, new_token, new_unit, serial};
use futures::TryStreamExt;
use ukey_admin::domain::{LoginKind, LoginOutcome, LoginRecord, Month, TokenChange, UnitKind};
use ukey_admin::service::Service;
use ukey_admin::storage::LoginQuery;
use ukey_testkit::TestPki;
use uuid::Uuid;

async fn units(service: &Service) {
    let s = service.storage();
    let now = service.clock().now();
    s.insert_unit(
        &new_unit("D", "涪陵区委", UnitKind::Committee, None),
        now,
        audited(),
    )
    .await
    .unwrap();
    s.insert_unit(
        &new_unit(
            "01",
            "李渡街道党工委",
            UnitKind::WorkingCommittee,
            Some("D"),
        ),
        now,
        audited(),
    )
    .await
    .unwrap();
}

async fn records(service: &Service) -> Vec<LoginRecord> {
    let month = Month::containing(service.clock().now());
    service
        .logins(LoginQuery {
            from: month.start(),
            to: month.end(),
            under: None,
        })
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_logs_in_over_mutual_tls_and_the_login_is_recorded() {
    let pki = TestPki::new();
    let store = Store::sqlite().await;
    let server = TestServer::start(&pki, store.storage.clone()).await;
    units(&server.service).await;
    let (token, cert) = new_token(&pki, "01", "T1");
    let now = server.service.clock().now();
    server
        .service
        .storage()
        .register_token(&token, Some(&code("01")), "test", "issued", now, audited())
        .await
        .unwrap();

    let client = TlsClient::new(pki.ca_pem(), Some(&cert));
    let mut conn = client.connect(server.addr).await.unwrap();
    let (status, body) = conn
        .request(
            "POST",
            "/api/v1/sessions",
            None,
            r#"{"client_version":"ukeyd/0.1.0"}"#,
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["unit"]["code"], "01");
    assert_eq!(body["unit"]["name"], "李渡街道党工委");
    assert_eq!(body["token_serial"], "T1");
    let id: Uuid = body["session_id"].as_str().unwrap().parse().unwrap();

    let (status, me) = conn
        .request("GET", "/api/v1/me", Some(id), "")
        .await
        .unwrap();
    assert_eq!(
        (status, me["session_id"].as_str()),
        (200, Some(id.to_string().as_str()))
    );
    let (status, _) = conn
        .request("DELETE", &format!("/api/v1/sessions/{id}"), None, "")
        .await
        .unwrap();
    assert_eq!(status, 204);
    let (status, ended) = conn
        .request("GET", "/api/v1/me", Some(id), "")
        .await
        .unwrap();
    assert_eq!(
        (status, ended["code"].as_str()),
        (401, Some("session_ended"))
    );

    let logins = records(&server.service).await;
    let login = logins.iter().find(|r| r.kind == LoginKind::Login).unwrap();
    assert_eq!(login.outcome, LoginOutcome::Success);
    assert_eq!(login.token_serial, Some(serial("T1")));
    assert_eq!(login.unit_code, Some(code("01")));
    assert_eq!(login.session_id, Some(id));
    assert_eq!(login.client_version.as_deref(), Some("ukeyd/0.1.0"));
    assert!(login.source.as_deref().unwrap().starts_with("127.0.0.1:"));
    assert!(login.logout_at.is_some(), "the logout time is recorded");

    let (status, doc) = conn
        .request("GET", "/api/v1/openapi.json", None, "")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        doc["paths"]["/api/v1/sessions"]["post"].is_object(),
        "{doc}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_suspended_and_revoked_tokens_are_refused_and_recorded() {
    let pki = TestPki::new();
    let store = Store::sqlite().await;
    let server = TestServer::start(&pki, store.storage.clone()).await;
    units(&server.service).await;
    let s = server.service.storage().clone();
    let now = server.service.clock().now();
    let (_, unknown) = new_token(&pki, "01", "NEW");
    let (suspended, suspended_cert) = new_token(&pki, "01", "SUS");
    let (revoked, revoked_cert) = new_token(&pki, "01", "REV");
    for t in [&suspended, &revoked] {
        s.register_token(t, Some(&code("01")), "test", "issued", now, audited())
            .await
            .unwrap();
    }
    s.change_token(
        &serial("SUS"),
        &TokenChange::Suspend,
        "test",
        "audit",
        now,
        audited(),
    )
    .await
    .unwrap();
    s.change_token(
        &serial("REV"),
        &TokenChange::Revoke { replaced_by: None },
        "test",
        "broken",
        now,
        audited(),
    )
    .await
    .unwrap();

    for (cert, expected) in [
        (&unknown, "unknown_certificate"),
        (&suspended_cert, "suspended"),
        (&revoked_cert, "revoked"),
    ] {
        let mut conn = TlsClient::new(pki.ca_pem(), Some(cert))
            .connect(server.addr)
            .await
            .unwrap();
        let (status, body) = conn
            .request("POST", "/api/v1/sessions", None, "")
            .await
            .unwrap();
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some(expected)),
            "{body}"
        );
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
    // No certificate at all: refused, and not recorded (it names no token).
    let mut anonymous = TlsClient::new(pki.ca_pem(), None)
        .connect(server.addr)
        .await
        .unwrap();
    let (status, body) = anonymous
        .request("POST", "/api/v1/sessions", None, "")
        .await
        .unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("no_client_certificate"))
    );
    // A certificate from another CA does not get through the handshake.
    let (_other, stranger) = TestPki::untrusted_client();
    let refused = match TlsClient::new(pki.ca_pem(), Some(&stranger))
        .connect(server.addr)
        .await
    {
        Err(_) => true,
        Ok(mut c) => c
            .request("POST", "/api/v1/sessions", None, "")
            .await
            .is_err(),
    };
    assert!(
        refused,
        "a certificate from another CA is refused in the handshake"
    );

    let logins = records(&server.service).await;
    let outcomes: Vec<_> = logins.iter().map(|r| r.outcome.code()).collect();
    assert_eq!(outcomes, ["unknown_certificate", "suspended", "revoked"]);
    assert_eq!(logins[0].claimed_serial.as_deref(), Some("NEW"));
    assert_eq!(
        logins[0].fingerprint,
        Some(ukey_certs::spki_fingerprint(&unknown.cert_der).unwrap())
    );
    assert_eq!(logins[1].token_serial, Some(serial("SUS")));
    assert_eq!(logins[2].unit_code, Some(code("01")));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_suspended_while_its_client_holds_a_resumed_session_and_a_kept_alive_connection_is_refused_at_its_next_request()
 {
    let pki = TestPki::new();
    let store = Store::sqlite().await;
    let server = TestServer::start(&pki, store.storage.clone()).await;
    units(&server.service).await;
    let (token, cert) = new_token(&pki, "01", "T1");
    let now = server.service.clock().now();
    server
        .service
        .storage()
        .register_token(&token, Some(&code("01")), "test", "issued", now, audited())
        .await
        .unwrap();
    let client = TlsClient::new(pki.ca_pem(), Some(&cert));

    let mut first = client.connect(server.addr).await.unwrap();
    assert!(!first.resumed);
    let (status, body) = first
        .request("POST", "/api/v1/sessions", None, "")
        .await
        .unwrap();
    assert_eq!(status, 201);
    let id: Uuid = body["session_id"].as_str().unwrap().parse().unwrap();
    drop(first);

    let mut kept = client.connect(server.addr).await.unwrap();
    assert!(
        kept.resumed,
        "the second connection resumes the TLS session"
    );
    assert_eq!(
        kept.request("GET", "/api/v1/me", Some(id), "")
            .await
            .unwrap()
            .0,
        200
    );

    server
        .service
        .change_token(
            &serial("T1"),
            &TokenChange::Suspend,
            "reported by the unit",
            &ukey_admin::service::Actor::cli(),
        )
        .await
        .unwrap();
    let (status, body) = kept
        .request("GET", "/api/v1/me", Some(id), "")
        .await
        .unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("suspended")),
        "the same keep-alive connection"
    );
    let mut again = client.connect(server.addr).await.unwrap();
    assert!(again.resumed);
    let (status, body) = again
        .request("POST", "/api/v1/sessions", None, "")
        .await
        .unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("suspended")),
        "a new resumed connection"
    );

    let logins = records(&server.service).await;
    let refused: Vec<_> = logins
        .iter()
        .filter(|r| r.outcome == LoginOutcome::Refused(ukey_proto::api::Refusal::Suspended))
        .map(|r| (r.kind, r.session_id))
        .collect();
    assert_eq!(
        refused,
        [(LoginKind::Request, Some(id)), (LoginKind::Login, None)]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_at_its_expiry_and_requests_in_it_are_then_refused() {
    let pki = TestPki::new();
    let store = Store::sqlite().await;
    let server = TestServer::start(&pki, store.storage.clone()).await;
    units(&server.service).await;
    let (token, cert) = new_token(&pki, "01", "T1");
    let now = server.service.clock().now();
    server
        .service
        .storage()
        .register_token(&token, Some(&code("01")), "test", "issued", now, audited())
        .await
        .unwrap();
    let mut conn = TlsClient::new(pki.ca_pem(), Some(&cert))
        .connect(server.addr)
        .await
        .unwrap();
    let (_, body) = conn
        .request("POST", "/api/v1/sessions", None, "")
        .await
        .unwrap();
    let id: Uuid = body["session_id"].as_str().unwrap().parse().unwrap();
    let expires = time::OffsetDateTime::parse(
        body["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expires - now, time::Duration::hours(8));
    server.clock.set(expires - time::Duration::seconds(1));
    assert_eq!(
        conn.request("GET", "/api/v1/me", Some(id), "")
            .await
            .unwrap()
            .0,
        200
    );
    server.clock.set(expires);
    let (status, body) = conn
        .request("GET", "/api/v1/me", Some(id), "")
        .await
        .unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("session_ended"))
    );
    let (status, body) = conn
        .request("GET", "/api/v1/me", Some(Uuid::now_v7()), "")
        .await
        .unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("session_ended")),
        "an unknown session"
    );
    server.stop().await;
}
