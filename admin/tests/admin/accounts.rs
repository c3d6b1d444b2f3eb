//! Operator accounts through the management API: two factors, lockout, timeouts, one-time
//! secrets, resets, the password rule, rehashing, cookies and logout.

use crate::harness::{Api, Client, PASSWORD};
use crate::support::code;
use secrecy::ExposeSecret;
use serde_json::json;
use time::Duration;
use ukey_admin::domain::account::Role;
use ukey_admin::service::{Actor, HashParams, OperatorLogin};

/// R at the top, districts A and B below it.
async fn tree(api: &Api) {
    api.unit("R", None).await;
    api.unit("A", Some("R")).await;
    api.unit("B", Some("R")).await;
}

fn same_answer(a: &crate::harness::Answer, b: &crate::harness::Answer) {
    assert_eq!(a.status, b.status);
    assert_eq!(a.body, b.body, "one generic error");
    for h in ["content-type", "content-language", "www-authenticate"] {
        assert_eq!(a.headers.get(h), b.headers.get(h), "{h}");
    }
}

async fn five_failures_lock_the_account_for_thirty_minutes_and_unknown_users_get_the_same_answer(
    store: crate::support::Store,
) {
    let api = Api::start(store, OperatorLogin::TokenAndPassword).await;
    tree(&api).await;
    let alice = api
        .operator("alice", Some("A"), "A", &[Role::Operator])
        .await;
    let nobody = Client {
        username: "nobody".into(),
        ..alice.clone()
    };
    let (unknown, _) = api.login(&nobody, PASSWORD).await;
    let (wrong, _) = api.login(&alice, "Wrong-password-1").await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (401, "invalid_credentials")
    );
    same_answer(&unknown, &wrong);

    for _ in 0..4 {
        let (a, _) = api.login(&alice, "Wrong-password-1").await;
        same_answer(&a, &wrong);
    }
    // Five failures: locked, and the right password gets the same answer.
    let (locked, _) = api.login(&alice, PASSWORD).await;
    same_answer(&locked, &wrong);
    let last = api.last_audit().await;
    assert!(last.detail.contains("\"locked\""), "{}", last.detail);
    let account = api.service.account("alice").await.unwrap().unwrap();
    assert!(account.locked_until.is_some());

    api.clock
        .advance(Duration::minutes(29) + Duration::seconds(59));
    let (still, _) = api.login(&alice, PASSWORD).await;
    same_answer(&still, &wrong);
    api.clock.advance(Duration::seconds(2));
    let (open, _) = api.login(&alice, PASSWORD).await;
    assert_eq!(open.status, 200, "{}", open.text);

    // The security administrator lifts a lock before its time.
    for _ in 0..5 {
        api.login(&alice, "Wrong-password-1").await;
    }
    assert_eq!(api.login(&alice, PASSWORD).await.0.status, 401);
    let sec = api.operator("sec", None, "R", &[Role::Secadmin]).await;
    let unlocked = api
        .call(&sec, "POST", "/api/v1/accounts/alice/unlock", None)
        .await;
    assert_eq!(unlocked.status, 200, "{}", unlocked.text);
    assert_eq!(api.login(&alice, PASSWORD).await.0.status, 200);
}

async fn an_idle_session_ends_after_fifteen_minutes_and_any_session_after_twelve_hours(
    store: crate::support::Store,
) {
    let api = Api::start(store, OperatorLogin::TokenAndPassword).await;
    tree(&api).await;
    let alice = api
        .operator("alice", Some("A"), "A", &[Role::Operator])
        .await;
    let me = |c: &Client| {
        let c = c.clone();
        let api = &api;
        async move {
            api.call(&c, "GET", "/api/v1/operator/me", None)
                .await
                .status
        }
    };
    api.clock
        .advance(Duration::minutes(14) + Duration::seconds(59));
    assert_eq!(me(&alice).await, 200, "14:59 idle is allowed");
    api.clock
        .advance(Duration::minutes(15) + Duration::seconds(1));
    assert_eq!(me(&alice).await, 401, "15:01 idle is refused");
    let ended = api.last_audit().await;
    assert_eq!(ended.action, "operator.session_end");
    assert!(ended.detail.contains("idle"), "{}", ended.detail);
    api.clock.advance(Duration::minutes(1));
    assert_eq!(me(&alice).await, 401, "an ended session stays ended");

    let (a, token) = api.login(&alice, PASSWORD).await;
    assert_eq!(a.status, 200);
    let busy = Client {
        token,
        ..alice.clone()
    };
    // Busy all day: a request every ten minutes until the twelfth hour.
    for _ in 0..71 {
        api.clock.advance(Duration::minutes(10));
        assert_eq!(me(&busy).await, 200);
    }
    api.clock
        .advance(Duration::minutes(9) + Duration::seconds(59));
    assert_eq!(me(&busy).await, 200, "11:59:59 after login");
    api.clock.advance(Duration::seconds(2));
    assert_eq!(
        me(&busy).await,
        401,
        "12 hours after login, whatever the activity"
    );
    assert!(api.last_audit().await.detail.contains("absolute"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_secret_works_once_expires_and_forces_a_new_password() {
    let api = Api::sqlite(OperatorLogin::TokenAndPassword).await;
    tree(&api).await;
    let cert = api.token_at("A").await;
    // No built-in account: the usual guesses get nowhere.
    for (user, password) in [("admin", "admin"), ("sysadmin", "123456"), ("root", "root")] {
        let guess = Client {
            username: user.into(),
            cert: Some(cert.clone()),
            token: None,
        };
        assert_eq!(api.login(&guess, password).await.0.status, 401);
    }
    let officers = api
        .service
        .bootstrap_officers(
            &[
                ("sysadmin", "系统管理员", Role::Sysadmin),
                ("secadmin", "安全保密管理员", Role::Secadmin),
            ],
            &Actor::cli(),
        )
        .await
        .unwrap();
    let secret = |i: usize| officers[i].1.expose_secret().to_owned();
    let mut sys = Client {
        username: "sysadmin".into(),
        cert: Some(cert.clone()),
        token: None,
    };
    // Typed by hand: lower case and no dashes are the same secret.
    let typed = secret(0).replace('-', "").to_lowercase();
    let (first, token) = api.login(&sys, &typed).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["must_change_password"], true);
    sys.token = token;
    let blocked = api.call(&sys, "GET", "/api/v1/units", None).await;
    assert_eq!(
        (blocked.status, blocked.code()),
        (403, "password_change_required")
    );
    assert_eq!(api.last_audit().await.result, "denied");
    let (again, _) = api.login(&sys, &secret(0)).await;
    assert_eq!(
        (again.status, again.code()),
        (401, "invalid_credentials"),
        "works once"
    );
    let changed = api
        .call(
            &sys,
            "POST",
            "/api/v1/operator/password",
            Some(json!({"new_password": PASSWORD})),
        )
        .await;
    assert_eq!(changed.status, 204, "{}", changed.text);
    assert_eq!(
        api.call(&sys, "GET", "/api/v1/operator/me", None)
            .await
            .status,
        401,
        "a password change ends every session, this one included"
    );
    let (after, token) = api.login(&sys, PASSWORD).await;
    assert_eq!(after.body["must_change_password"], false);
    sys.token = token;
    assert_eq!(
        api.call(&sys, "GET", "/api/v1/units", None).await.status,
        200
    );

    // The other secret, a day and a second later: expired.
    api.clock
        .advance(Duration::hours(24) + Duration::seconds(1));
    let sec = Client {
        username: "secadmin".into(),
        cert: Some(cert),
        token: None,
    };
    let (late, _) = api.login(&sec, &secret(1)).await;
    assert_eq!((late.status, late.code()), (401, "invalid_credentials"));
    assert!(api.last_audit().await.detail.contains("secret_expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_by_the_auditor_is_refused_and_the_sysadmins_secret_works_once_and_ends_old_sessions()
 {
    let api = Api::sqlite(OperatorLogin::TokenAndPassword).await;
    tree(&api).await;
    let sys = api.operator("sys", None, "R", &[Role::Sysadmin]).await;
    let aud = api.operator("aud", None, "R", &[Role::Auditor]).await;
    let alice = api
        .operator("alice", Some("A"), "A", &[Role::Operator])
        .await;

    let refused = api
        .call(&aud, "POST", "/api/v1/accounts/alice/reset", None)
        .await;
    assert_eq!((refused.status, refused.code()), (403, "forbidden"));
    let denial = api.last_audit().await;
    assert_eq!(
        (
            denial.actor.as_str(),
            denial.action.as_str(),
            denial.result.as_str()
        ),
        ("op:aud", "account.reset", "denied")
    );
    assert_eq!(
        api.call(&alice, "GET", "/api/v1/operator/me", None)
            .await
            .status,
        200
    );

    let reset = api
        .call(&sys, "POST", "/api/v1/accounts/alice/reset", None)
        .await;
    assert_eq!(reset.status, 200, "{}", reset.text);
    let secret = reset.body["one_time_secret"].as_str().unwrap().to_owned();
    assert_eq!(reset.body["account"]["pending_secret"], "reset");
    assert_eq!(
        api.call(&alice, "GET", "/api/v1/operator/me", None)
            .await
            .status,
        401,
        "the old session died"
    );
    assert_eq!(
        api.login(&alice, PASSWORD).await.0.status,
        401,
        "the old password died"
    );
    let (first, token) = api.login(&alice, &secret).await;
    assert_eq!(first.body["must_change_password"], true);
    assert_eq!(api.login(&alice, &secret).await.0.status, 401, "works once");
    let s = Client {
        token,
        ..alice.clone()
    };
    let changed = api
        .call(
            &s,
            "POST",
            "/api/v1/operator/password",
            Some(json!({"new_password": "Fresh-Tundra-4417"})),
        )
        .await;
    assert_eq!(changed.status, 204, "{}", changed.text);
    assert_eq!(api.login(&alice, "Fresh-Tundra-4417").await.0.status, 200);

    // A system administrator does not reset the security administrator or the auditor.
    let officer = api
        .call(&sys, "POST", "/api/v1/accounts/aud/reset", None)
        .await;
    assert_eq!(officer.status, 403);
    assert!(api.last_audit().await.detail.contains("officer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_rule_through_the_api_refuses_with_every_reason_listed() {
    let api = Api::sqlite(OperatorLogin::Password).await;
    tree(&api).await;
    // Context words: username, display name, unit name and code.
    let by = Actor::cli();
    let (account, secret) = api
        .service
        .create_account("wangfang", "王晓芳", Some(&code("A")), &by)
        .await
        .unwrap();
    api.service
        .grant_role(&account, Role::Operator, &by)
        .await
        .unwrap();
    let mut wang = Client {
        username: "wangfang".into(),
        cert: None,
        token: None,
    };
    wang.token = api.login(&wang, secret.expose_secret()).await.1;
    let table: &[(&str, &[&str])] = &[
        ("Ab1!", &["too_short"]),
        ("abcdefghij", &["missing_digit", "missing_special"]),
        ("1234567890!", &["missing_letter"]),
        ("Abcdefgh1234", &["missing_special"]),
        ("Abc\tdefg12!x", &["control_character"]),
        ("Password123!", &["guessable"]),
        ("Qwerty123456!", &["guessable"]),
        ("wangfang-Ozone-71!", &["contains_context"]),
        ("王晓芳的密码-Kiwi-71!", &["contains_context"]),
        ("A 党委-Kiwi-Mango-71!", &["contains_context"]),
    ];
    let too_long = "Aa1!".repeat(80);
    let mut cases: Vec<(&str, &[&str])> = table.to_vec();
    cases.push((&too_long, &["too_long"]));
    for (password, expected) in cases {
        let a = api
            .call(
                &wang,
                "POST",
                "/api/v1/operator/password",
                Some(json!({"new_password": password})),
            )
            .await;
        assert_eq!(
            (a.status, a.code()),
            (422, "password_rejected"),
            "{password:?}: {}",
            a.text
        );
        let got: Vec<&str> = a.body["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(got, expected, "{password:?}");
        assert_eq!(api.last_audit().await.result, "failed");
    }
    // Every reason in the message, in the request's language.
    let zh = api
        .send(
            None,
            wang.token.as_deref(),
            "POST",
            "/api/v1/operator/password",
            Some(json!({"new_password": "abcdefghij"})),
            "zh-CN",
        )
        .await;
    let message = zh.body["message"].as_str().unwrap();
    assert!(
        message.contains("必须包含数字") && message.contains("必须包含特殊字符"),
        "{message}"
    );

    // Accepted: long, Unicode, full-width; the last five are refused when reused.
    let accepted = [
        "Xq7#plum-Harbor-93",
        "月光下的猫咪-42跳舞",
        "correct horse battery staple 1917 !",
        "Ｚebra＃Ｌantern８８２",
        "Tidal-Marsh-60-Egret",
        "Quiet.Cobalt.Fjord.27",
    ];
    for (i, password) in accepted.iter().enumerate() {
        let a = api
            .call(&wang, "POST", "/api/v1/operator/password", Some(json!({"current_password": if i == 0 { None } else { Some(accepted[i - 1]) }, "new_password": password})))
            .await;
        assert_eq!(a.status, 204, "{password:?}: {}", a.text);
        wang.token = api.login(&wang, password).await.1;
        assert!(wang.token.is_some(), "{password:?} logs in");
    }
    // The five most recent (current included) are refused; the sixth back is allowed again.
    let current = accepted[5];
    for old in &accepted[1..6] {
        let a = api
            .call(
                &wang,
                "POST",
                "/api/v1/operator/password",
                Some(json!({"current_password": current, "new_password": old})),
            )
            .await;
        assert_eq!(a.body["violations"], json!(["recently_used"]), "{old:?}");
    }
    let wrong_current = api
        .call(
            &wang,
            "POST",
            "/api/v1/operator/password",
            Some(
                json!({"current_password": "nope-nope-1!", "new_password": "Brand-New-Kestrel-5"}),
            ),
        )
        .await;
    assert_eq!(
        (wrong_current.status, wrong_current.code()),
        (403, "wrong_password")
    );
    let a = api
        .call(
            &wang,
            "POST",
            "/api/v1/operator/password",
            Some(json!({"current_password": current, "new_password": accepted[0]})),
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_login_without_a_token_is_refused_before_the_password_is_looked_at() {
    let api = Api::sqlite(OperatorLogin::TokenAndPassword).await;
    tree(&api).await;
    let alice = api
        .operator("alice", Some("A"), "A", &[Role::Operator])
        .await;
    let bare = Client {
        cert: None,
        ..alice.clone()
    };
    let (right, _) = api.login(&bare, PASSWORD).await;
    assert_eq!((right.status, right.code()), (401, "token_required"));
    let (wrong, _) = api.login(&bare, "Wrong-password-1").await;
    same_answer(&right, &wrong);
    let (unknown, _) = api
        .login(
            &Client {
                username: "nobody".into(),
                ..bare.clone()
            },
            PASSWORD,
        )
        .await;
    same_answer(&right, &unknown);
    for _ in 0..10 {
        api.login(&bare, "Wrong-password-1").await;
    }
    // The password was never looked at: no failure counted, no lock.
    let account = api.service.account("alice").await.unwrap().unwrap();
    assert_eq!((account.failed_logins, account.locked_until), (0, None));
    let record = api.last_audit().await;
    assert!(
        record.detail.contains("token_required"),
        "{}",
        record.detail
    );

    // A U-Key of another district: a failed login, counted.
    let outsider = Client {
        cert: Some(api.token_at("B").await),
        ..alice.clone()
    };
    let (other, _) = api.login(&outsider, PASSWORD).await;
    assert_eq!((other.status, other.code()), (401, "invalid_credentials"));
    assert!(
        api.last_audit()
            .await
            .detail
            .contains("token_outside_scope")
    );
    assert_eq!(
        api.service
            .account("alice")
            .await
            .unwrap()
            .unwrap()
            .failed_logins,
        1
    );

    // Every request of a session needs the session's own U-Key.
    let without = Client {
        cert: None,
        ..alice.clone()
    };
    assert_eq!(
        api.call(&without, "GET", "/api/v1/operator/me", None)
            .await
            .code(),
        "token_required"
    );
    assert_eq!(
        api.call(&alice, "GET", "/api/v1/operator/me", None)
            .await
            .status,
        200
    );
    let stolen = Client {
        cert: Some(api.token_at("A").await),
        ..alice.clone()
    };
    assert_eq!(
        api.call(&stolen, "GET", "/api/v1/operator/me", None)
            .await
            .status,
        401
    );
    assert!(api.last_audit().await.detail.contains("token_mismatch"));
    assert_eq!(
        api.call(&alice, "GET", "/api/v1/operator/me", None)
            .await
            .status,
        401,
        "a session seen with another U-Key is ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_made_at_a_lower_cost_is_replaced_at_the_next_login() {
    let store = crate::support::Store::sqlite().await;
    let storage = store.storage.clone();
    let shared = store.share();
    let api = Api::start(store, OperatorLogin::Password).await;
    tree(&api).await;
    let alice = api
        .operator("alice", Some("A"), "A", &[Role::Operator])
        .await;
    let phc = |s: &std::sync::Arc<dyn ukey_admin::storage::Storage>| {
        let s = s.clone();
        async move {
            s.login_account("alice")
                .await
                .unwrap()
                .unwrap()
                .password_hash
                .unwrap()
        }
    };
    assert!(phc(&storage).await.contains("m=64,t=1,p=1"));
    // The same database, a service restarted with a higher cost.
    let mut settings = crate::harness::settings(OperatorLogin::Password);
    settings.accounts.hashing = HashParams::insecure_for_tests(128, 2);
    let higher = Api::with_settings(shared, settings).await;
    let (a, _) = higher.login(&alice, PASSWORD).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let rehashed = phc(&storage).await;
    assert!(rehashed.contains("m=128,t=2,p=1"), "{rehashed}");
    assert!(
        higher
            .last_audit()
            .await
            .detail
            .contains("\"rehashed\":true")
    );
    assert_eq!(higher.login(&alice, PASSWORD).await.0.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_httponly_secure_strict_and_logout_ends_every_session() {
    let api = Api::sqlite(OperatorLogin::TokenAndPassword).await;
    tree(&api).await;
    let alice = api
        .operator("alice", Some("A"), "A", &[Role::Operator])
        .await;
    let a = api
        .send(
            alice.cert.as_ref(),
            None,
            "POST",
            "/api/v1/operator/login",
            Some(json!({"username": "alice", "password": PASSWORD})),
            "en",
        )
        .await;
    assert_eq!(a.status, 200);
    assert!(
        a.body.get("token").is_none(),
        "no token in the body with a cookie"
    );
    let cookie = a.headers["set-cookie"].to_str().unwrap().to_owned();
    for attribute in [
        "__Host-ukey_session=",
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let value = cookie.split(';').next().unwrap().to_owned();
    let mut req = axum::http::Request::get("/api/v1/operator/me")
        .header("cookie", &value)
        .body(axum::body::Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(ukey_admin::http::ConnectionInfo {
            remote: "127.0.0.1:1".parse().unwrap(),
            peer: Some(
                ukey_admin::service::Peer::from_der(&alice.cert.as_ref().unwrap().cert_der)
                    .unwrap(),
            ),
        });
    let router = ukey_admin::http::api::router(api.service.clone());
    let resp = tower::ServiceExt::oneshot(router, req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");

    // Logout from one session ends the other (bearer) one too.
    let out = api
        .call(&alice, "POST", "/api/v1/operator/logout", None)
        .await;
    assert_eq!(out.status, 204);
    assert!(
        out.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        api.call(&alice, "GET", "/api/v1/operator/me", None)
            .await
            .status,
        401
    );
    let mut again = axum::http::Request::get("/api/v1/operator/me")
        .header("cookie", &value)
        .body(axum::body::Body::empty())
        .unwrap();
    again
        .extensions_mut()
        .insert(ukey_admin::http::ConnectionInfo {
            remote: "127.0.0.1:1".parse().unwrap(),
            peer: Some(
                ukey_admin::service::Peer::from_der(&alice.cert.as_ref().unwrap().cert_der)
                    .unwrap(),
            ),
        });
    let router = ukey_admin::http::api::router(api.service.clone());
    assert_eq!(
        tower::ServiceExt::oneshot(router, again)
            .await
            .unwrap()
            .status(),
        401
    );
}

mod five_failures_lock_the_account_for_thirty_minutes_and_unknown_users_get_the_same_answer_on {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::five_failures_lock_the_account_for_thirty_minutes_and_unknown_users_get_the_same_answer(crate::support::Store::sqlite().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::five_failures_lock_the_account_for_thirty_minutes_and_unknown_users_get_the_same_answer(crate::support::Store::postgres().await).await;
    }
}

mod an_idle_session_ends_after_fifteen_minutes_and_any_session_after_twelve_hours_on {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::an_idle_session_ends_after_fifteen_minutes_and_any_session_after_twelve_hours(
            crate::support::Store::sqlite().await,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::an_idle_session_ends_after_fifteen_minutes_and_any_session_after_twelve_hours(
            crate::support::Store::postgres().await,
        )
        .await;
    }
}
