//! The management API in this process: the real router, with the connection's client
//! certificate injected as the accept loop would, a clock the test holds, and Argon2 at a low
//! cost (these tests are not about hashing; `passwords` and the init test use the real cost).

use crate::support::{Store, audited, code, new_token, t0};
use axum::body::Body;
use futures::StreamExt;
use http_body_util::BodyExt;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;
use ukey_admin::audit::{AuditQuery, AuditRecord};
use ukey_admin::clock::{Clock, ManualClock};
use ukey_admin::domain::account::Role;
use ukey_admin::domain::{NewUnit, UnitKind};
use ukey_admin::http::ConnectionInfo;
use ukey_admin::service::{
    AccountSettings, Actor, HashParams, OperatorLogin, Peer, Service, Settings,
};
use ukey_testkit::{ClientCert, TestPki};

pub const PASSWORD: &str = "Xq7#plum-Harbor-93";

/// An answer: status, headers and JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

/// A client: its U-Key certificate (if any) and session token (if logged in).
#[derive(Clone)]
pub struct Client {
    pub username: String,
    pub cert: Option<ClientCert>,
    pub token: Option<String>,
}

pub struct Api {
    pub service: Service,
    pub clock: ManualClock,
    pub pki: TestPki,
    pub store: Store,
    router: axum::Router,
    tokens: std::sync::atomic::AtomicUsize,
}

pub fn settings(mode: OperatorLogin) -> Settings {
    Settings {
        sessions: Default::default(),
        accounts: AccountSettings {
            operator_login: mode,
            hashing: HashParams::insecure_for_tests(64, 1),
            ..AccountSettings::default()
        },
    }
}

impl Api {
    pub async fn start(store: Store, mode: OperatorLogin) -> Api {
        Self::with_settings(store, settings(mode)).await
    }

    pub async fn with_settings(store: Store, settings: Settings) -> Api {
        let clock = ManualClock::at(t0());
        let service = Service::new(
            store.storage.clone(),
            Arc::new(clock.clone()),
            settings,
            (*crate::support::test_key()).clone(),
        );
        let router = ukey_admin::http::api::router(service.clone());
        Api {
            service,
            clock,
            pki: TestPki::new(),
            store,
            router,
            tokens: Default::default(),
        }
    }

    pub async fn sqlite(mode: OperatorLogin) -> Api {
        Self::start(Store::sqlite().await, mode).await
    }

    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    /// A unit, straight into storage (audited as the test).
    pub async fn unit(&self, c: &str, parent: Option<&str>) {
        let unit = NewUnit {
            code: code(c),
            name: format!("{c} 党委"),
            short_name: None,
            kind: UnitKind::Committee,
            parent: parent.map(code),
            examinee: false,
            contact_name: None,
            contact_phone: None,
        };
        self.store
            .storage
            .insert_unit(&unit, self.clock.now(), audited())
            .await
            .unwrap();
    }

    /// A token certificate bound (and active) to `unit`, with a fresh serial.
    pub async fn token_at(&self, unit: &str) -> ClientCert {
        let n = self
            .tokens
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let s = format!("K{n}");
        let (token, cert) = new_token(&self.pki, unit, &s);
        self.store
            .storage
            .register_token(
                &token,
                Some(&code(unit)),
                "test",
                "issued",
                self.clock.now(),
                audited(),
            )
            .await
            .unwrap();
        cert
    }

    /// Sends a request as `client` (its certificate on the connection, its session as a
    /// bearer token), in English unless `lang` says otherwise.
    pub async fn call(
        &self,
        client: &Client,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        self.send(
            client.cert.as_ref(),
            client.token.as_deref(),
            method,
            path,
            body,
            "en",
        )
        .await
    }

    pub async fn send(
        &self,
        cert: Option<&ClientCert>,
        bearer: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
        lang: &str,
    ) -> Answer {
        let body = body.map(|v| ("application/json".to_owned(), v.to_string().into_bytes()));
        self.send_raw(cert, bearer, method, path, body, lang).await
    }

    /// Sends a request with a body of any type (`(content type, bytes)`).
    pub async fn send_raw(
        &self,
        cert: Option<&ClientCert>,
        bearer: Option<&str>,
        method: &str,
        path: &str,
        body: Option<(String, Vec<u8>)>,
        lang: &str,
    ) -> Answer {
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("accept-language", lang);
        if let Some(token) = bearer {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some((content_type, bytes)) => {
                req = req.header("content-type", content_type);
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        let mut req = req.body(body).unwrap();
        req.extensions_mut().insert(ConnectionInfo {
            remote: "127.0.0.1:40000".parse().unwrap(),
            peer: cert.map(|c| Peer::from_der(&c.cert_der).unwrap()),
        });
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text,
        }
    }

    /// Logs in; returns the answer and, on success, the bearer token.
    pub async fn login(&self, client: &Client, password: &str) -> (Answer, Option<String>) {
        let a = self
            .send(
                client.cert.as_ref(),
                None,
                "POST",
                "/api/v1/operator/login",
                Some(
                    json!({"username": client.username, "password": password, "session": "bearer"}),
                ),
                "en",
            )
            .await;
        let token = a.body["token"].as_str().map(str::to_owned);
        (a, token)
    }

    /// An account scoped to `unit` (`None`: every unit) with `roles`, its own U-Key bound
    /// within that scope (`token_unit`), logged in with a password it has set.
    pub async fn operator(
        &self,
        username: &str,
        unit: Option<&str>,
        token_unit: &str,
        roles: &[Role],
    ) -> Client {
        let by = Actor::cli();
        let (account, secret) = self
            .service
            .create_account(
                username,
                &format!("{username} 同志"),
                unit.map(code).as_ref(),
                &by,
            )
            .await
            .unwrap();
        for role in roles {
            self.service.grant_role(&account, *role, &by).await.unwrap();
        }
        let mut client = Client {
            username: username.to_owned(),
            cert: Some(self.token_at(token_unit).await),
            token: None,
        };
        let (a, token) = self.login(&client, secret.expose_secret()).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.body["must_change_password"], true);
        client.token = token;
        let changed = self
            .call(
                &client,
                "POST",
                "/api/v1/operator/password",
                Some(json!({"new_password": PASSWORD})),
            )
            .await;
        assert_eq!(changed.status, 204, "{}", changed.text);
        let (a, token) = self.login(&client, PASSWORD).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.body["must_change_password"], false);
        client.token = token;
        client
    }

    /// Every audit record, oldest first.
    pub async fn audit(&self) -> Vec<AuditRecord> {
        self.service
            .audit_records(AuditQuery::default())
            .map(|r| r.unwrap())
            .collect()
            .await
    }

    /// The last audit record's position (0 when there is none).
    pub async fn last_audit_id(&self) -> i64 {
        let last: Vec<_> = self
            .service
            .audit_records(AuditQuery {
                descending: true,
                limit: Some(1),
                ..AuditQuery::default()
            })
            .collect()
            .await;
        last.first().map_or(0, |r| r.as_ref().unwrap().id)
    }

    pub async fn last_audit(&self) -> AuditRecord {
        self.audit().await.pop().unwrap()
    }
}

/// The serial of a registered token certificate.
pub fn serial_of(cert: &ClientCert) -> String {
    ukey_certs::ClientIdentity::from_der(&cert.cert_der)
        .unwrap()
        .token
        .to_string()
}
