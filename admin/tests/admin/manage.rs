//! The management API's surface: the OpenAPI document, login records (cursor pages, filters,
//! CSV stream), imports through the API, and errors in the request's language.

use crate::harness::Api;
use crate::support::code;
use serde_json::json;
use ukey_admin::domain::account::Role;
use ukey_admin::service::{OperatorLogin, Peer, RequestContext};

/// Every management route, as the router serves it.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/operator/login"),
    ("post", "/api/v1/operator/logout"),
    ("get", "/api/v1/operator/me"),
    ("post", "/api/v1/operator/password"),
    ("get", "/api/v1/units"),
    ("post", "/api/v1/units"),
    ("post", "/api/v1/units/import"),
    ("get", "/api/v1/units/export"),
    ("get", "/api/v1/units/{code}"),
    ("patch", "/api/v1/units/{code}"),
    ("delete", "/api/v1/units/{code}"),
    ("post", "/api/v1/units/{code}/move"),
    ("get", "/api/v1/administrators"),
    ("post", "/api/v1/administrators"),
    ("put", "/api/v1/administrators/{id}"),
    ("delete", "/api/v1/administrators/{id}"),
    ("get", "/api/v1/tokens"),
    ("post", "/api/v1/tokens"),
    ("get", "/api/v1/tokens/{serial}"),
    ("get", "/api/v1/tokens/{serial}/history"),
    ("post", "/api/v1/tokens/{serial}/{change}"),
    ("get", "/api/v1/accounts"),
    ("post", "/api/v1/accounts"),
    ("get", "/api/v1/accounts/{username}"),
    ("post", "/api/v1/accounts/{username}/{operation}"),
    ("post", "/api/v1/accounts/{username}/roles"),
    ("delete", "/api/v1/accounts/{username}/roles/{role}"),
    ("put", "/api/v1/accounts/{username}/scope"),
    ("get", "/api/v1/policy"),
    ("put", "/api/v1/policy"),
    ("get", "/api/v1/logins"),
    ("get", "/api/v1/logins/export"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/audit/export"),
    ("get", "/api/v1/audit/verify"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_management_route_is_served_and_described_in_the_openapi_document() {
    let api = Api::sqlite(OperatorLogin::Password).await;
    let doc = serde_json::to_value(ukey_admin::http::api::openapi_document()).unwrap();
    for (method, path) in ROUTES {
        let op = &doc["paths"][path][method];
        assert!(
            op.is_object(),
            "{method} {path} missing from the OpenAPI document"
        );
        assert!(
            op["responses"].is_object(),
            "{method} {path} has no responses"
        );
        // Served: without a session the answer is 401, never 404 or 405.
        let concrete = path
            .replace("{code}", "X")
            .replace("{id}", "1")
            .replace("{serial}", "S")
            .replace("{change}", "suspend")
            .replace("{username}", "someone")
            .replace("{operation}", "disable")
            .replace("{role}", "operator");
        let a = api
            .send(
                None,
                None,
                &method.to_uppercase(),
                &concrete,
                Some(json!({})),
                "en",
            )
            .await;
        assert!(
            a.status == 401 || (concrete == "/api/v1/operator/login" && a.status == 400),
            "{method} {concrete}: {} {}",
            a.status,
            a.text
        );
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(p, _)| {
            !["/api/v1/sessions", "/api/v1/sessions/{id}", "/api/v1/me"].contains(&p.as_str())
        })
        .map(|(_, ops)| ops.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        ROUTES.len(),
        "nothing documented that is not served"
    );
    assert!(doc["components"]["securitySchemes"]["session_cookie"].is_object());
}

async fn login_records_come_in_cursor_pages_with_filters_and_as_a_csv_stream(
    store: crate::support::Store,
) {
    let api = Api::start(store, OperatorLogin::Password).await;
    api.unit("R", None).await;
    api.unit("A", Some("R")).await;
    api.unit("B", Some("R")).await;
    let a_token = api.token_at("A").await;
    let b_token = api.token_at("B").await;
    let login = |cert: &ukey_testkit::ClientCert, version: &str| {
        let ctx = RequestContext {
            peer: Some(Peer::from_der(&cert.cert_der).unwrap()),
            source: Some("10.0.0.7:5000".parse().unwrap()),
            lang: Default::default(),
            client_version: Some(version.to_owned()),
        };
        let service = api.service.clone();
        async move { service.create_session(&ctx).await.unwrap() }
    };
    for i in 0..5 {
        login(&a_token, &format!("ukeyd/0.{i}")).await;
    }
    login(&a_token, "=cmd|' /C calc'!A0").await;
    login(&b_token, "ukeyd/0.9").await;
    let auditor = api.operator("aud", Some("A"), "A", &[Role::Auditor]).await;

    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = api
            .call(
                &auditor,
                "GET",
                &format!("/api/v1/logins?limit=4&cursor={cursor}"),
                None,
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.text);
        for item in page.body["items"].as_array().unwrap() {
            seen.push(item["id"].as_i64().unwrap());
            assert_eq!(item["unit_code"], "A", "only the auditor's district");
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats: {seen:?}"
    );
    let filtered = api
        .call(
            &auditor,
            "GET",
            "/api/v1/logins?kind=login&outcome=success&limit=2",
            None,
        )
        .await;
    assert_eq!(filtered.body["items"].as_array().unwrap().len(), 2);
    let other = api
        .call(&auditor, "GET", "/api/v1/logins?unit=B", None)
        .await;
    assert_eq!(other.status, 403, "another district");

    let csv = api
        .call(&auditor, "GET", "/api/v1/logins/export", None)
        .await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(lines.len(), 7, "a header and six records:\n{}", csv.text);
    assert!(lines[0].starts_with("time,kind,result"));
    assert!(csv.text.contains("'=cmd"), "formula defused:\n{}", csv.text);
    assert!(lines[1].contains("ukeyd/0.0"), "oldest first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_through_the_api_checks_everything_first_and_stays_within_the_operators_subtree()
{
    let api = Api::sqlite(OperatorLogin::Password).await;
    api.unit("R", None).await;
    api.unit("A", Some("R")).await;
    api.unit("B", Some("R")).await;
    let sys = api
        .operator("sys-a", Some("A"), "A", &[Role::Sysadmin])
        .await;
    let csv = "简码,单位简称\nA-1,甲一党支部\nA-2,甲二党支部\n";
    let post = |path: &str, body: &str| {
        let (path, body) = (path.to_owned(), body.as_bytes().to_vec());
        let api = &api;
        let sys = sys.clone();
        async move {
            api.send_raw(
                None,
                sys.token.as_deref(),
                "POST",
                &path,
                Some(("text/csv".into(), body)),
                "en",
            )
            .await
        }
    };
    let dry = post("/api/v1/units/import?parent=A&dry_run=true", csv).await;
    assert_eq!(dry.status, 200, "{}", dry.text);
    assert_eq!(dry.body["stored"], false);
    assert_eq!(dry.body["units"].as_array().unwrap().len(), 2);
    assert!(
        api.service
            .storage()
            .unit(&code("A-1"))
            .await
            .unwrap()
            .is_none()
    );
    let before = api.audit().await.len();
    let real = post("/api/v1/units/import?parent=A", csv).await;
    assert_eq!(real.body["stored"], true, "{}", real.text);
    assert!(
        api.service
            .storage()
            .unit(&code("A-2"))
            .await
            .unwrap()
            .is_some()
    );
    let records = api.audit().await;
    assert_eq!(records.len(), before + 1, "one import, one record");
    assert!(records.last().unwrap().detail.contains("A-1"));
    let outside = post(
        "/api/v1/units/import?parent=B",
        "简码,单位简称\nB-1,乙一党支部\n",
    )
    .await;
    assert_eq!(outside.status, 403);
    let bad = post("/api/v1/units/import?parent=A", "简码,单位简称\n,无简码\n").await;
    assert_eq!(bad.status, 400, "{}", bad.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_come_as_code_and_message_in_the_requests_language() {
    let api = Api::sqlite(OperatorLogin::Password).await;
    api.unit("R", None).await;
    let aud = api.operator("aud", None, "R", &[Role::Auditor]).await;
    let token = aud.token.clone();
    let zh = api
        .send(
            None,
            token.as_deref(),
            "POST",
            "/api/v1/accounts/aud/reset",
            None,
            "zh-CN,zh;q=0.9",
        )
        .await;
    let en = api
        .send(
            None,
            token.as_deref(),
            "POST",
            "/api/v1/accounts/aud/reset",
            None,
            "en-US",
        )
        .await;
    assert_eq!((zh.status, zh.code()), (403, "forbidden"));
    assert_eq!(zh.code(), en.code());
    assert!(
        zh.body["message"].as_str().unwrap().contains("没有权限"),
        "{}",
        zh.text
    );
    assert!(
        en.body["message"]
            .as_str()
            .unwrap()
            .contains("not permitted"),
        "{}",
        en.text
    );
    assert_eq!(zh.headers["content-language"], "zh-CN");
    let missing = api
        .send(
            None,
            token.as_deref(),
            "GET",
            "/api/v1/units/NOPE",
            None,
            "zh-CN",
        )
        .await;
    assert_eq!(
        (missing.status, missing.code()),
        (404, "not_found"),
        "whole-tree: 404"
    );
    assert!(missing.body["message"].as_str().unwrap().contains("不存在"));
}

mod login_records_come_in_cursor_pages_with_filters_and_as_a_csv_stream_on {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::login_records_come_in_cursor_pages_with_filters_and_as_a_csv_stream(
            crate::support::Store::sqlite().await,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::login_records_come_in_cursor_pages_with_filters_and_as_a_csv_stream(
            crate::support::Store::postgres().await,
        )
        .await;
    }
}
