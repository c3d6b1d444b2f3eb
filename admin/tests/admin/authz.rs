//! Authorization through the management API: the generated role × endpoint × scope matrix,
//! and a property test over random call sequences for the separation of the three officers.

use crate::harness::{Api, Client};
use crate::support::code;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use ukey_admin::domain::TokenChange;
use ukey_admin::domain::account::{ALL_ROLES, Role};
use ukey_admin::service::{Actor, OperatorLogin};

const SYS: u8 = 1;
const SEC: u8 = 2;
const AUD: u8 = 4;
const OP: u8 = 8;
const ASS: u8 = 16;
const ALL: u8 = SYS | SEC | AUD | OP | ASS;

fn bit(role: Role) -> u8 {
    match role {
        Role::Sysadmin => SYS,
        Role::Secadmin => SEC,
        Role::Auditor => AUD,
        Role::Operator => OP,
        _ => ASS,
    }
}

/// Where a case's target lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// A unit: A1 (within the acting account's district A) or B1 (another district).
    Unit,
    /// The whole installation: "in scope" for a whole-tree account, out for a district one.
    Global,
    /// A list the service restricts to the account's own subtree: no out-of-scope form.
    Own,
}

/// The expected matrix, written out independently of the service's permission table: which
/// roles may call each endpoint on a target within their subtree. Outside it, nobody may.
const CASES: &[(&str, &str, Reach, u8)] = &[
    ("units.list", "unit.list", Reach::Unit, ALL),
    ("units.read", "unit.read", Reach::Unit, ALL),
    ("units.create", "unit.create", Reach::Unit, SYS),
    ("units.create_top", "unit.create", Reach::Global, SYS),
    ("units.update", "unit.update", Reach::Unit, SYS),
    ("units.delete", "unit.delete", Reach::Unit, SYS),
    ("units.move", "unit.move", Reach::Unit, SYS),
    ("units.import", "unit.import", Reach::Unit, SYS),
    ("units.export", "unit.export", Reach::Unit, ALL),
    ("admins.list", "administrator.list", Reach::Unit, SYS | OP),
    (
        "admins.create",
        "administrator.create",
        Reach::Unit,
        SYS | OP,
    ),
    (
        "admins.update",
        "administrator.update",
        Reach::Unit,
        SYS | OP,
    ),
    (
        "admins.delete",
        "administrator.delete",
        Reach::Unit,
        SYS | OP,
    ),
    ("tokens.list", "token.list", Reach::Unit, SYS | OP),
    ("tokens.read", "token.read", Reach::Unit, SYS | OP),
    ("tokens.history", "token.read", Reach::Unit, SYS | OP),
    ("tokens.register", "token.register", Reach::Unit, SYS | OP),
    (
        "tokens.register_unbound",
        "token.register",
        Reach::Global,
        SYS | OP,
    ),
    ("tokens.bind", "token.bind", Reach::Global, SYS | OP),
    ("tokens.rebind", "token.rebind", Reach::Unit, SYS | OP),
    ("tokens.suspend", "token.suspend", Reach::Unit, SYS | OP),
    ("tokens.resume", "token.resume", Reach::Unit, SYS | OP),
    ("tokens.lost", "token.lost", Reach::Unit, SYS | OP),
    ("tokens.revoke", "token.revoke", Reach::Unit, SYS | OP),
    ("accounts.list", "account.list", Reach::Own, SYS | SEC),
    ("accounts.read", "account.read", Reach::Unit, SYS | SEC),
    ("accounts.create", "account.create", Reach::Unit, SYS),
    ("accounts.create_all", "account.create", Reach::Global, SYS),
    ("accounts.disable", "account.disable", Reach::Unit, SYS),
    ("accounts.enable", "account.enable", Reach::Unit, SYS),
    ("accounts.reset", "account.reset", Reach::Unit, SYS),
    ("accounts.unlock", "account.unlock", Reach::Unit, SEC),
    ("roles.grant", "role.grant", Reach::Unit, SEC),
    ("roles.revoke", "role.revoke", Reach::Unit, SEC),
    ("accounts.scope", "account.scope", Reach::Unit, SEC),
    ("policy.read", "policy.read", Reach::Own, SEC | AUD),
    ("policy.update", "policy.update", Reach::Global, SEC),
    ("logins.list", "login.list", Reach::Unit, AUD | ASS),
    ("logins.export", "login.export", Reach::Unit, AUD | ASS),
    ("audit.list", "audit.list", Reach::Unit, AUD),
    ("audit.export", "audit.export", Reach::Unit, AUD),
    ("audit.verify", "audit.verify", Reach::Global, AUD),
];

type Request = (&'static str, String, Option<(String, Vec<u8>)>);

fn body(v: Value) -> Option<(String, Vec<u8>)> {
    Some(("application/json".into(), v.to_string().into_bytes()))
}

/// Builds a case's request on unit `x` (A1 or B1), making what it needs first (directly in
/// the service, so that only the request itself reaches the audit trail during the check).
async fn prepare(api: &Api, case: &str, n: usize, x: &str) -> Request {
    let cli = Actor::cli();
    let s = &api.service;
    let fresh_token = || async { crate::harness::serial_of(&api.token_at(x).await) };
    let fresh_account = |roles: Vec<Role>| {
        let cli = cli.clone();
        async move {
            let name = format!("t{n}");
            let (a, _) = s
                .create_account(&name, "被操作账户", Some(&code(x)), &cli)
                .await
                .unwrap();
            for r in roles {
                s.grant_role(&a, r, &cli).await.unwrap();
            }
            name
        }
    };
    match case {
        "units.list" => ("GET", format!("/api/v1/units?under={x}"), None),
        "units.read" => ("GET", format!("/api/v1/units/{x}"), None),
        "units.create" => (
            "POST",
            "/api/v1/units".into(),
            body(json!({"code": format!("N{n}"), "name": format!("新党支部{n}"), "parent": x})),
        ),
        "units.create_top" => (
            "POST",
            "/api/v1/units".into(),
            body(json!({"code": format!("T{n}"), "name": format!("顶层党委{n}")})),
        ),
        "units.update" => (
            "PATCH",
            format!("/api/v1/units/{x}"),
            body(json!({"contact_name": format!("联系人{n}")})),
        ),
        "units.delete" => {
            api.unit(&format!("D{n}"), Some(x)).await;
            ("DELETE", format!("/api/v1/units/D{n}"), None)
        }
        "units.move" => {
            api.unit(&format!("M{n}"), Some(x)).await;
            api.unit(&format!("P{n}"), Some(x)).await;
            (
                "POST",
                format!("/api/v1/units/M{n}/move"),
                body(json!({"parent": format!("P{n}")})),
            )
        }
        "units.import" => (
            "POST",
            format!("/api/v1/units/import?parent={x}&dry_run=true"),
            Some((
                "text/csv".into(),
                format!("简码,单位简称\nI{n},导入单位{n}\n").into_bytes(),
            )),
        ),
        "units.export" => ("GET", format!("/api/v1/units/export?under={x}"), None),
        "admins.list" => ("GET", format!("/api/v1/administrators?unit={x}"), None),
        "admins.create" => (
            "POST",
            "/api/v1/administrators".into(),
            body(json!({"unit": x, "name": "张三", "mobile": "13812345678"})),
        ),
        "admins.update" | "admins.delete" => {
            let admin = s
                .add_administrator(code(x), "李四", "13912345678", &cli)
                .await
                .unwrap();
            if case == "admins.update" {
                (
                    "PUT",
                    format!("/api/v1/administrators/{}", admin.id),
                    body(json!({"name": "李四", "mobile": "13912345679"})),
                )
            } else {
                (
                    "DELETE",
                    format!("/api/v1/administrators/{}", admin.id),
                    None,
                )
            }
        }
        "tokens.list" => ("GET", format!("/api/v1/tokens?unit={x}"), None),
        "tokens.read" => (
            "GET",
            format!("/api/v1/tokens/{}", fresh_token().await),
            None,
        ),
        "tokens.history" => (
            "GET",
            format!("/api/v1/tokens/{}/history", fresh_token().await),
            None,
        ),
        "tokens.register" | "tokens.register_unbound" => {
            let serial = format!("R{n}");
            let cert = api
                .pki
                .token_client(&code(x), &crate::support::serial(&serial));
            let unit = (case == "tokens.register").then_some(x);
            (
                "POST",
                "/api/v1/tokens".into(),
                body(
                    json!({"serial": serial, "certificate": cert.cert_pem, "unit": unit, "reason": "新领用"}),
                ),
            )
        }
        "tokens.bind" => {
            let serial = format!("U{n}");
            let (token, _) = crate::support::new_token(&api.pki, x, &serial);
            api.store
                .storage
                .register_token(
                    &token,
                    None,
                    "test",
                    "delivered",
                    api.now(),
                    crate::support::audited(),
                )
                .await
                .unwrap();
            (
                "POST",
                format!("/api/v1/tokens/{serial}/bind"),
                body(json!({"unit": x, "reason": "发放"})),
            )
        }
        "tokens.rebind" => {
            let serial = fresh_token().await;
            api.unit(&format!("Q{n}"), Some(x)).await;
            (
                "POST",
                format!("/api/v1/tokens/{serial}/rebind"),
                body(json!({"unit": format!("Q{n}"), "reason": "调整"})),
            )
        }
        "tokens.suspend" | "tokens.lost" | "tokens.revoke" => {
            let change = case.trim_start_matches("tokens.");
            (
                "POST",
                format!("/api/v1/tokens/{}/{change}", fresh_token().await),
                body(json!({"reason": "管理需要"})),
            )
        }
        "tokens.resume" => {
            let serial = fresh_token().await;
            s.change_token(
                &crate::support::serial(&serial),
                &TokenChange::Suspend,
                "暂停",
                &cli,
            )
            .await
            .unwrap();
            (
                "POST",
                format!("/api/v1/tokens/{serial}/resume"),
                body(json!({"reason": "恢复"})),
            )
        }
        "accounts.list" => ("GET", "/api/v1/accounts".into(), None),
        "accounts.read" => (
            "GET",
            format!("/api/v1/accounts/{}", fresh_account(vec![]).await),
            None,
        ),
        "accounts.create" | "accounts.create_all" => {
            let unit = (case == "accounts.create").then_some(x);
            (
                "POST",
                "/api/v1/accounts".into(),
                body(
                    json!({"username": format!("new{n}"), "display_name": "新同事", "unit": unit}),
                ),
            )
        }
        "accounts.disable" | "accounts.enable" | "accounts.reset" | "accounts.unlock" => {
            let op = case.trim_start_matches("accounts.");
            (
                "POST",
                format!("/api/v1/accounts/{}/{op}", fresh_account(vec![]).await),
                None,
            )
        }
        "roles.grant" => (
            "POST",
            format!("/api/v1/accounts/{}/roles", fresh_account(vec![]).await),
            body(json!({"role": "operator"})),
        ),
        "roles.revoke" => (
            "DELETE",
            format!(
                "/api/v1/accounts/{}/roles/operator",
                fresh_account(vec![Role::Operator]).await
            ),
            None,
        ),
        "accounts.scope" => (
            "PUT",
            format!("/api/v1/accounts/{}/scope", fresh_account(vec![]).await),
            body(json!({"unit": x})),
        ),
        "policy.read" => ("GET", "/api/v1/policy".into(), None),
        "policy.update" => (
            "PUT",
            "/api/v1/policy".into(),
            body(
                serde_json::to_value(ukey_admin::domain::account::SecurityPolicy::default())
                    .unwrap(),
            ),
        ),
        "logins.list" => ("GET", format!("/api/v1/logins?unit={x}"), None),
        "logins.export" => ("GET", format!("/api/v1/logins/export?unit={x}"), None),
        "audit.list" => ("GET", format!("/api/v1/audit?unit={x}"), None),
        "audit.export" => (
            "GET",
            format!("/api/v1/audit/export?since=2000-01-01&unit={x}"),
            None,
        ),
        "audit.verify" => ("GET", "/api/v1/audit/verify".into(), None),
        other => panic!("no request for case {other}"),
    }
}

/// R at the top; districts A and B, each with a unit below (A1, B1).
async fn tree(api: &Api) {
    api.unit("R", None).await;
    for d in ["A", "B"] {
        api.unit(d, Some("R")).await;
        api.unit(&format!("{d}1"), Some(d)).await;
    }
}

async fn every_role_endpoint_and_scope_cell_is_allowed_exactly_as_the_matrix_says_and_every_denial_is_audited(
    store: crate::support::Store,
) {
    let api = Api::start(store, OperatorLogin::TokenAndPassword).await;
    tree(&api).await;
    // Each role twice: within district A, and over every unit.
    let mut district = BTreeMap::new();
    let mut whole = BTreeMap::new();
    for role in ALL_ROLES {
        let c = role.code();
        district.insert(
            bit(*role),
            api.operator(&format!("{c}-a"), Some("A"), "A", &[*role])
                .await,
        );
        whole.insert(
            bit(*role),
            api.operator(&format!("{c}-all"), None, "R", &[*role]).await,
        );
    }
    let mut n = 0;
    let mut wrong = Vec::new();
    for (case, action, reach, allowed) in CASES {
        for role in ALL_ROLES {
            let sides: &[bool] = match reach {
                Reach::Own => &[true],
                _ => &[true, false],
            };
            for &inside in sides {
                n += 1;
                let (actor, x): (&Client, &str) = match (reach, inside) {
                    (Reach::Global, true) => (&whole[&bit(*role)], "A1"),
                    (Reach::Global, false) | (Reach::Own, _) => (&district[&bit(*role)], "A1"),
                    (Reach::Unit, true) => (&district[&bit(*role)], "A1"),
                    (Reach::Unit, false) => (&district[&bit(*role)], "B1"),
                };
                let (method, path, body) = prepare(&api, case, n, x).await;
                let before = api.last_audit_id().await;
                let a = api
                    .send_raw(
                        actor.cert.as_ref(),
                        actor.token.as_deref(),
                        method,
                        &path,
                        body,
                        "en",
                    )
                    .await;
                let records = api.audit().await;
                let new: Vec<_> = records.iter().filter(|r| r.id > before).collect();
                let expect_allowed = inside && allowed & bit(*role) != 0;
                let cell = format!(
                    "{case} {} {}",
                    role.code(),
                    if inside { "in" } else { "out" }
                );
                if new.len() != 1 {
                    wrong.push(format!("{cell}: {} audit records", new.len()));
                }
                let record = new.last();
                if expect_allowed {
                    if !(200..300).contains(&a.status) {
                        wrong.push(format!(
                            "{cell}: expected success, got {} {}",
                            a.status, a.text
                        ));
                    }
                } else {
                    if (a.status, a.code()) != (403, "forbidden") {
                        wrong.push(format!("{cell}: expected 403, got {} {}", a.status, a.text));
                    }
                    let audited = record.is_some_and(|r| {
                        r.result == "denied"
                            && r.action == *action
                            && r.actor == format!("op:{}", actor.username)
                    });
                    if !audited {
                        wrong.push(format!("{cell}: denial not audited as such: {record:?}"));
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong cell(s):\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // A district's lists never show another district, and a district's ids are not guessable:
    // an account of A gets the same 403 for B's token as for a token that does not exist.
    let sys_a = &district[&SYS];
    let accounts = api.call(sys_a, "GET", "/api/v1/accounts", None).await;
    assert!(
        accounts
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["unit"]["code"] == "A" || a["unit"]["code"] == "A1"),
        "{}",
        accounts.text
    );
    let units = api.call(sys_a, "GET", "/api/v1/units", None).await;
    let codes: Vec<&str> = units
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.iter().all(|c| !c.starts_with('B') && *c != "R"),
        "{codes:?}"
    );
    let b_token = crate::harness::serial_of(&api.token_at("B1").await);
    let real = api
        .call(sys_a, "GET", &format!("/api/v1/tokens/{b_token}"), None)
        .await;
    let ghost = api
        .call(sys_a, "GET", "/api/v1/tokens/NO-SUCH-TOKEN", None)
        .await;
    assert_eq!((real.status, &real.body), (ghost.status, &ghost.body));
    assert_eq!(real.status, 403);
}

mod separation {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Grant(usize, usize, Role),
        Revoke(usize, usize, Role),
        Scope(usize, usize, Option<&'static str>),
    }

    /// Actors: two security administrators and a system administrator. Targets: those three
    /// and two ordinary accounts.
    const NAMES: [&str; 5] = ["sec1", "sec2", "sys", "xia", "yan"];

    fn step() -> impl Strategy<Value = Step> {
        let role = prop::sample::select(ALL_ROLES.to_vec());
        let unit = prop::sample::select(vec![None, Some("A"), Some("B")]);
        prop_oneof![
            (0..3usize, 0..5usize, role.clone()).prop_map(|(a, t, r)| Step::Grant(a, t, r)),
            (0..3usize, 0..5usize, role).prop_map(|(a, t, r)| Step::Revoke(a, t, r)),
            (0..3usize, 0..5usize, unit).prop_map(|(a, t, u)| Step::Scope(a, t, u)),
        ]
    }

    async fn run(steps: Vec<Step>) -> Result<(), TestCaseError> {
        let api = Api::sqlite(OperatorLogin::Password).await;
        api.unit("R", None).await;
        api.unit("A", Some("R")).await;
        api.unit("B", Some("R")).await;
        let clients = [
            api.operator("sec1", None, "R", &[Role::Secadmin]).await,
            api.operator("sec2", None, "R", &[Role::Secadmin]).await,
            api.operator("sys", None, "R", &[Role::Sysadmin]).await,
        ];
        let cli = Actor::cli();
        let (x, _) = api
            .service
            .create_account("xia", "夏甲", Some(&code("A")), &cli)
            .await
            .unwrap();
        let (y, _) = api
            .service
            .create_account("yan", "严乙", None, &cli)
            .await
            .unwrap();
        api.service
            .grant_role(&y, Role::Operator, &cli)
            .await
            .unwrap();
        let _ = x;
        for step in steps {
            let (actor, target) = match &step {
                Step::Grant(a, t, _) | Step::Revoke(a, t, _) | Step::Scope(a, t, _) => (*a, *t),
            };
            let was_secadmin = api
                .service
                .account(NAMES[actor])
                .await
                .unwrap()
                .unwrap()
                .roles
                .contains(&Role::Secadmin);
            let target_name = NAMES[target];
            let (method, path, body) = match &step {
                Step::Grant(_, _, r) => (
                    "POST",
                    format!("/api/v1/accounts/{target_name}/roles"),
                    Some(json!({"role": r.code()})),
                ),
                Step::Revoke(_, _, r) => (
                    "DELETE",
                    format!("/api/v1/accounts/{target_name}/roles/{}", r.code()),
                    None,
                ),
                Step::Scope(_, _, u) => (
                    "PUT",
                    format!("/api/v1/accounts/{target_name}/scope"),
                    Some(json!({ "unit": u })),
                ),
            };
            let a = api.call(&clients[actor], method, &path, body).await;
            let ok = (200..300).contains(&a.status);
            prop_assert!(
                !(ok && actor == target),
                "{step:?}: an account changed its own roles or scope ({})",
                a.text
            );
            prop_assert!(
                !ok || was_secadmin,
                "{step:?}: granted by an account that is no security administrator"
            );
            for account in api
                .service
                .accounts(&ukey_admin::domain::account::Scope::All)
                .await
                .unwrap()
            {
                let officers = account.roles.iter().filter(|r| r.is_officer()).count();
                prop_assert!(
                    officers == 0 || account.roles.len() == 1,
                    "{step:?}: {} holds {:?}",
                    account.username,
                    account.roles
                );
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

        #[test]
        fn no_call_sequence_gives_an_account_two_officer_roles_or_lets_a_secadmin_grant_itself(
            steps in prop::collection::vec(step(), 1..14)
        ) {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(run(steps))?;
        }
    }
}

mod every_role_endpoint_and_scope_cell_is_allowed_exactly_as_the_matrix_says_and_every_denial_is_audited_on {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::every_role_endpoint_and_scope_cell_is_allowed_exactly_as_the_matrix_says_and_every_denial_is_audited(crate::support::Store::sqlite().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::every_role_endpoint_and_scope_cell_is_allowed_exactly_as_the_matrix_says_and_every_denial_is_audited(crate::support::Store::postgres().await).await;
    }
}
