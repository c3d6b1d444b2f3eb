//! The `ukey-admin` binary: init, imports of the seed forms, units, tokens and exports.

use crate::support::Installation;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

fn data(name: &str) -> String {
    format!("{DATA}/{name}")
}

#[test]
fn init_makes_a_ca_and_a_server_certificate_and_never_overwrites_an_installation() {
    let inst = Installation::sqlite();
    let server = std::fs::read(inst.data().join("tls/server.pem")).unwrap();
    let info = ukey_certs::CertificateInfo::from_pem_or_der(&server).unwrap();
    assert_eq!(
        info.issuer,
        inst.ca().issuing_info().subject,
        "issued by the new CA"
    );
    assert!(info.ip_addresses.contains(&"127.0.0.1".parse().unwrap()));
    use std::os::unix::fs::PermissionsExt;
    for private in [
        "ukey-admin.toml",
        "ukey-admin.db",
        "tls/server.key",
        "ca/issuing-ca.key",
    ] {
        let mode = std::fs::metadata(inst.data().join(private))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{private} is owner-only");
    }
    let config = std::fs::read_to_string(&inst.config).unwrap();
    assert!(
        config.contains("database = \"sqlite:ukey-admin.db\""),
        "{config}"
    );

    let again = std::process::Command::new(crate::support::BIN)
        .args(["init", "--data-dir"])
        .arg(inst.data())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));
    assert_eq!(
        std::fs::read(inst.data().join("tls/server.pem")).unwrap(),
        server
    );
}

#[test]
fn the_seed_examinee_list_imports_under_a_parent_named_on_the_command_line() {
    let inst = Installation::sqlite();
    inst.ok(&[
        "units",
        "add",
        "--code",
        "FL",
        "--name",
        "中共重庆市涪陵区委员会",
        "--kind",
        "党委",
    ]);
    let dry = inst.ok(&[
        "units",
        "import",
        &data("examinees.csv"),
        "--parent",
        "FL",
        "--dry-run",
    ]);
    assert!(
        dry.contains("50 unit(s)") && dry.contains("dry run"),
        "{dry}"
    );
    assert_eq!(
        inst.ok(&["units", "list", "--format", "json"])
            .matches("\"code\"")
            .count(),
        1
    );

    let done = inst.ok(&["units", "import", &data("examinees.csv"), "--parent", "FL"]);
    assert!(done.contains("50 unit(s)"), "{done}");
    let units: serde_json::Value =
        serde_json::from_str(&inst.ok(&["units", "list", "--under", "FL", "--format", "json"]))
            .unwrap();
    let units = units.as_array().unwrap();
    assert_eq!(units.len(), 51);
    let examinees: Vec<_> = units.iter().filter(|u| u["examinee"] == true).collect();
    assert_eq!(examinees.len(), 50);
    assert!(examinees.iter().all(|u| u["parent_code"] == "FL"));
    let find = |c: &str| units.iter().find(|u| u["code"] == c).unwrap();
    assert_eq!(
        (find("01")["name"].as_str(), find("01")["kind"].as_str()),
        (Some("李渡街道党工委"), Some("working_committee"))
    );
    assert_eq!(find("09")["kind"], "committee");
    assert_eq!(find("50")["name"], "区委两新工委");

    let again = inst.ok(&["units", "import", &data("examinees.csv"), "--parent", "FL"]);
    assert!(
        again.contains("0 unit(s)") && again.contains("50 row(s) already present"),
        "{again}"
    );
}

#[test]
fn a_purchase_list_with_a_bad_mobile_an_unknown_parent_and_a_duplicate_row_imports_nothing() {
    let inst = Installation::sqlite();
    inst.ok(&["units", "add", "--code", "FL", "--name", "涪陵区委"]);
    inst.ok(&[
        "units",
        "add",
        "--code",
        "01",
        "--name",
        "李渡街道党工委",
        "--parent",
        "FL",
    ]);
    let (ok, _, stderr) = inst.run(&["units", "import", &data("purchase-bad.csv")]);
    assert!(!ok);
    assert!(
        stderr.contains("3 bad row(s); nothing was imported"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 4, column 联系电话") && stderr.contains("1381234567"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 5, column 隶属关系") && stderr.contains("不存在的街道党工委"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 6, column 党组织名称") && stderr.contains("also on line 3"),
        "{stderr}"
    );
    assert_eq!(
        inst.ok(&["units", "list", "--format", "csv"])
            .lines()
            .count(),
        3,
        "only the two units"
    );
    assert_eq!(
        inst.ok(&["admins", "list", "--format", "csv"])
            .lines()
            .count(),
        1,
        "no administrator"
    );

    let done = inst.ok(&["units", "import", &data("purchase-good.csv")]);
    assert!(
        done.contains("3 unit(s), 3 administrator(s) imported"),
        "{done}"
    );
    let tree = inst.ok(&["units", "list", "--under", "01"]);
    assert!(
        tree.contains("01-2 李渡街道社区党总支 (党总支)")
            && tree.contains("    01-2-1 第一党支部 (党支部)"),
        "{tree}"
    );
    let admins = inst.ok(&["admins", "list", "--format", "csv"]);
    assert!(
        admins.contains("01-2,李渡街道社区党总支,李四,13912345678"),
        "{admins}"
    );
}

#[test]
fn a_unit_export_imports_back_into_another_installation() {
    let a = Installation::sqlite();
    a.ok(&["units", "add", "--code", "FL", "--name", "涪陵区委"]);
    a.ok(&["units", "import", &data("examinees.csv"), "--parent", "FL"]);
    a.ok(&[
        "units",
        "add",
        "--code",
        "01-1",
        "--name",
        "机关党支部",
        "--parent",
        "01",
        "--contact",
        "张三",
        "--phone",
        "023-72864814",
    ]);
    a.ok(&["units", "move", "01-1", "--to", "02"]);
    let export = a.dir.path().join("units.csv");
    a.ok(&["units", "export", "--output", export.to_str().unwrap()]);
    let b = Installation::sqlite();
    let done = b.ok(&["units", "import", export.to_str().unwrap()]);
    assert!(done.contains("52 unit(s)"), "{done}");
    assert_eq!(
        a.ok(&["units", "export", "--format", "csv"]),
        b.ok(&["units", "export", "--format", "csv"])
    );
}

#[test]
fn tokens_are_registered_bound_and_changed_only_by_explicit_operations_with_a_reason() {
    let inst = Installation::sqlite();
    inst.ok(&["units", "add", "--code", "FL", "--name", "涪陵区委"]);
    inst.ok(&[
        "units",
        "add",
        "--code",
        "01",
        "--name",
        "李渡街道党工委",
        "--parent",
        "FL",
    ]);
    inst.ok(&[
        "units",
        "add",
        "--code",
        "02",
        "--name",
        "敦仁街道党工委",
        "--parent",
        "FL",
    ]);
    let cert = inst.issue_token("01", "李渡街道党工委", "T1");
    let cert_path = cert.cert_path.to_str().unwrap();
    let (ok, _, err) = inst.run(&["tokens", "register", "--serial", "T2", "--cert", cert_path]);
    assert!(!ok && err.contains("names token \"T1\""), "{err}");
    let (ok, _, err) = inst.run(&[
        "tokens", "register", "--serial", "T1", "--cert", cert_path, "--unit", "02",
    ]);
    assert!(!ok && err.contains("names unit \"01\""), "{err}");
    let out = inst.ok(&[
        "tokens", "register", "--serial", "T1", "--cert", cert_path, "--unit", "01",
    ]);
    assert!(
        out.contains("active") && out.contains("bound to 01"),
        "{out}"
    );

    let (ok, _, err) = inst.run(&[
        "tokens", "bind", "--serial", "T1", "--unit", "02", "--reason", "take it",
    ]);
    assert!(
        !ok && err.contains("already bound to unit 01; use rebind"),
        "{err}"
    );
    let (ok, _, err) = inst.run(&["tokens", "suspend", "--serial", "T1"]);
    assert!(!ok && err.contains("--reason"), "{err}");
    let (ok, _, err) = inst.run(&["tokens", "suspend", "--serial", "T1", "--reason", " "]);
    assert!(!ok && err.contains("reason is required"), "{err}");
    inst.ok(&[
        "tokens",
        "rebind",
        "--serial",
        "T1",
        "--unit",
        "02",
        "--reason",
        "合并到敦仁",
    ]);
    inst.ok(&[
        "tokens",
        "suspend",
        "--serial",
        "T1",
        "--reason",
        "年度检查",
    ]);
    inst.ok(&["tokens", "resume", "--serial", "T1", "--reason", "检查完毕"]);
    inst.ok(&["tokens", "lost", "--serial", "T1", "--reason", "遗失"]);
    let (ok, _, err) = inst.run(&["tokens", "resume", "--serial", "T1", "--reason", "找到了"]);
    assert!(!ok && err.contains("is lost"), "{err}");
    inst.ok(&[
        "tokens",
        "revoke",
        "--serial",
        "T1",
        "--reason",
        "遗失后吊销",
    ]);
    let history = inst.ok(&["tokens", "history", "--serial", "T1", "--format", "csv"]);
    let events: Vec<_> = history
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().to_owned())
        .collect();
    assert_eq!(
        events,
        [
            "registered",
            "bound",
            "rebound",
            "suspended",
            "resumed",
            "lost",
            "revoked"
        ]
    );
    assert!(
        history.contains("合并到敦仁") && history.contains("cli:"),
        "{history}"
    );
    let list = inst.ok(&["tokens", "list", "--unit", "FL", "--format", "json"]);
    assert!(
        list.contains("\"status\": \"revoked\"") && list.contains("\"unit_code\": \"02\""),
        "{list}"
    );
}

#[test]
fn the_examinee_list_laid_out_as_in_the_seed_imports_from_xlsx() {
    // The seed's table: a title row, then two 简码/单位 pairs side by side.
    let csv = std::fs::read_to_string(data("examinees.csv")).unwrap();
    let rows: Vec<(String, String)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let (c, n) = l.split_once(',').unwrap();
            (c.to_owned(), n.to_owned())
        })
        .collect();
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet
        .write_string(0, 0, "重庆市涪陵区“12371 党建信息平台”考核对象名单(50 个)")
        .unwrap();
    for (col, h) in ["简码", "单位简称", "简码", "单位"].iter().enumerate() {
        sheet.write_string(1, col as u16, *h).unwrap();
    }
    for i in 0..25 {
        for (pair, (c, n)) in [&rows[i], &rows[i + 25]].into_iter().enumerate() {
            let col = (pair * 2) as u16;
            sheet.write_string(i as u32 + 2, col, c).unwrap();
            sheet.write_string(i as u32 + 2, col + 1, n).unwrap();
        }
    }
    let inst = Installation::sqlite();
    let path = inst.dir.path().join("考核对象名单.xlsx");
    book.save(&path).unwrap();
    inst.ok(&["units", "add", "--code", "FL", "--name", "涪陵区委"]);
    let done = inst.ok(&["units", "import", path.to_str().unwrap(), "--parent", "FL"]);
    assert!(done.contains("Examinees form: 50 unit(s)"), "{done}");
    let listed = inst.ok(&["units", "list", "--under", "FL", "--format", "csv"]);
    assert!(
        listed.contains("26,大木乡党委,大木乡党委,党委,FL,是"),
        "{listed}"
    );
}

/// The secret printed by `init` for `username`.
fn bootstrap_secret(inst: &Installation, username: &str) -> String {
    inst.init_output()
        .lines()
        .find_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some(username)).then(|| words.nth(1).unwrap().to_owned())
        })
        .unwrap_or_else(|| panic!("no secret for {username} in:\n{}", inst.init_output()))
}

/// At the real Argon2 cost (the binary takes no other), over real mutual TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_prints_bootstrap_secrets_that_open_a_forced_password_change_over_mutual_tls() {
    let inst = Installation::sqlite();
    let out = inst.init_output();
    for (user, label) in [
        ("sysadmin", "系统管理员"),
        ("secadmin", "安全保密管理员"),
        ("auditor", "安全审计员"),
    ] {
        assert!(out.contains(user) && out.contains(label), "{out}");
    }
    let secret = bootstrap_secret(&inst, "sysadmin");
    assert_eq!(secret.len(), 23, "{secret}");
    let mode = std::fs::metadata(inst.data().join("audit.key"))
        .unwrap()
        .permissions();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.mode() & 0o777, 0o600);

    inst.ok(&["units", "add", "--code", "D", "--name", "涪陵区委"]);
    let cert = inst.issue_token("D", "涪陵区委", "IT1");
    inst.ok(&[
        "tokens",
        "register",
        "--serial",
        "IT1",
        "--cert",
        cert.cert_path.to_str().unwrap(),
        "--unit",
        "D",
    ]);
    let (mut child, addr) = inst.serve();
    let login = |password: &str| {
        serde_json::json!({"username": "sysadmin", "password": password, "session": "bearer"})
            .to_string()
    };
    let with_token = crate::support::TlsClient::new(&inst.root_pem(), Some(&cert));
    let without = crate::support::TlsClient::new(&inst.root_pem(), None);

    let mut bare = without.connect(addr).await.unwrap();
    let (status, _, body) = bare
        .call("POST", "/api/v1/operator/login", &[], &login(&secret))
        .await
        .unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token_required"))
    );

    let mut conn = with_token.connect(addr).await.unwrap();
    let (status, _, body) = conn
        .call("POST", "/api/v1/operator/login", &[], &login(&secret))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["must_change_password"], true);
    assert_eq!(body["account"]["roles"], serde_json::json!(["sysadmin"]));
    let bearer = format!("Bearer {}", body["token"].as_str().unwrap());
    let (status, _, body) = conn
        .call("POST", "/api/v1/operator/login", &[], &login(&secret))
        .await
        .unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_credentials")),
        "works once"
    );
    let (status, _, body) = conn
        .call("GET", "/api/v1/units", &[("authorization", &bearer)], "")
        .await
        .unwrap();
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("password_change_required"))
    );
    let new_password = serde_json::json!({"new_password": "Granite-Osprey-5150!"}).to_string();
    let (status, _, body) = conn
        .call(
            "POST",
            "/api/v1/operator/password",
            &[("authorization", &bearer)],
            &new_password,
        )
        .await
        .unwrap();
    assert_eq!(status, 204, "{body}");
    let (status, _, body) = conn
        .call(
            "POST",
            "/api/v1/operator/login",
            &[],
            &login("Granite-Osprey-5150!"),
        )
        .await
        .unwrap();
    assert_eq!(
        (status, body["must_change_password"].as_bool()),
        (200, Some(false)),
        "{body}"
    );
    let bearer = format!("Bearer {}", body["token"].as_str().unwrap());
    let (status, headers, body) = conn
        .call(
            "GET",
            "/api/v1/units",
            &[("authorization", &bearer), ("accept-language", "zh-CN")],
            "",
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["code"], "D");
    assert_eq!(headers["cache-control"], "no-store");
    child.kill().unwrap();
    child.wait().unwrap();

    // Stored at the real cost; the trail verifies; break-glass recovery works from the CLI.
    let db = inst.data().join("ukey-admin.db");
    let mut c =
        <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!("sqlite:{}", db.display()))
            .await
            .unwrap();
    let phc: String = sqlx::query_scalar(
        "SELECT password_hash FROM operator_accounts WHERE username = 'sysadmin'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    assert!(inst.ok(&["audit", "verify"]).contains("intact"));
    let reset = inst.ok(&["accounts", "reset", "secadmin"]);
    assert!(reset.contains("one-time secret for secadmin"), "{reset}");
    let list = inst.ok(&["accounts", "list"]);
    assert!(
        list.contains("secadmin") && list.contains("reset"),
        "{list}"
    );
}
