//! The audit trail: one record per action, tampering found by the real `ukey-admin audit
//! verify` on SQLite (edited, deleted, cut, swapped — by SQL with the triggers dropped and by
//! bytes in the file) and on PostgreSQL (where the triggers refuse, and a superuser with the
//! triggers disabled is caught), an action whose record cannot be written does not happen,
//! and retention seals with a checkpoint.

use crate::harness::Api;
use crate::support::{Installation, code};
use futures::StreamExt;
use serde_json::json;
use sqlx::Connection;
use std::path::Path;
use time::{Duration, OffsetDateTime};
use ukey_admin::audit::Problem;
use ukey_admin::domain::account::Role;
use ukey_admin::service::{Actor, OperatorLogin};

/// A few audited changes through the CLI (init already wrote the officers' six).
fn some_changes(inst: &Installation) {
    inst.ok(&["units", "add", "--code", "D", "--name", "涪陵区委"]);
    inst.ok(&[
        "units",
        "add",
        "--code",
        "01",
        "--name",
        "李渡街道党工委",
        "--parent",
        "D",
    ]);
    inst.ok(&[
        "admins",
        "add",
        "--unit",
        "01",
        "--name",
        "张三",
        "--mobile",
        "13812345678",
    ]);
    inst.ok(&["units", "deactivate", "01"]);
}

/// Runs `audit verify`: (exit status, stdout + stderr).
fn verify(inst: &Installation) -> (bool, String) {
    let (ok, out, err) = inst.run(&["audit", "verify"]);
    (ok, format!("{out}{err}"))
}

async fn sqlite(path: &Path) -> sqlx::SqliteConnection {
    sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap()
}

/// Folds the WAL into the database file, so the file alone holds everything.
async fn checkpoint(db: &Path) {
    let mut conn = sqlite(db).await;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_verify_names_the_record_edited_deleted_cut_or_swapped_directly_in_the_file() {
    let inst = Installation::sqlite();
    some_changes(&inst);
    let (ok, out) = verify(&inst);
    assert!(ok, "{out}");
    assert!(out.contains("intact: 10 record(s), 1 to 10"), "{out}");
    // The verification is recorded after its walk (11), the export before it runs (12).
    let export = inst.ok(&["audit", "export", "--since", "2000-01-01"]);
    let records: Vec<serde_json::Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 12, "{export}");
    assert_eq!(records[6]["action"], "unit.create");
    assert!(records[6]["actor"].as_str().unwrap().starts_with("cli:"));
    assert_eq!(records[10]["action"], "audit.verify");
    assert_eq!(records[11]["action"], "audit.export");

    let db = inst.data().join("ukey-admin.db");
    checkpoint(&db).await;
    let pristine = std::fs::read(&db).unwrap();
    let restore = || {
        for side in ["ukey-admin.db-wal", "ukey-admin.db-shm"] {
            let _ = std::fs::remove_file(inst.data().join(side));
        }
        std::fs::write(&db, &pristine).unwrap();
    };

    // The triggers refuse plain SQL.
    let mut conn = sqlite(&db).await;
    for sql in [
        "UPDATE audit_log SET detail = '{}' WHERE id = 7",
        "DELETE FROM audit_log WHERE id = 7",
        "UPDATE audit_head SET last_id = 3",
    ] {
        let e = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        assert!(e.to_string().contains("audit"), "{sql}: {e}");
    }
    // Edited, with the trigger dropped first.
    sqlx::query("DROP TRIGGER audit_log_no_update")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE audit_log SET detail = replace(detail, '涪陵区委', '另一个区委') WHERE id = 7",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let (ok, out) = verify(&inst);
    assert!(!ok && out.contains("record 7 was altered"), "{out}");
    restore();

    // Edited byte by byte in the file (no SQL at all): `unit.create` → `unit.crEate`.
    let mut bytes = pristine.clone();
    let at = bytes
        .windows(11)
        .position(|w| w == b"unit.create")
        .expect("the action is in the file");
    bytes[at + 8] = b'E';
    std::fs::write(&db, &bytes).unwrap();
    let (ok, out) = verify(&inst);
    assert!(!ok && out.contains("was altered"), "{out}");
    restore();

    // Deleted from the middle, cut from the end, and cut from the start.
    for (sql, expected) in [
        (
            "DELETE FROM audit_log WHERE id = 8",
            "record 8 is missing (deleted): the chain goes on at record 9",
        ),
        (
            "DELETE FROM audit_log WHERE id = 12",
            "record 12 is missing (deleted): the trail was cut after record 11",
        ),
        (
            "DELETE FROM audit_log WHERE id <= 2",
            "records before 3 are missing and no checkpoint seals them",
        ),
    ] {
        let mut conn = sqlite(&db).await;
        sqlx::query("DROP TRIGGER audit_log_sealed_deletes_only")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query(sql).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        let (ok, out) = verify(&inst);
        assert!(!ok && out.contains(expected), "{sql}: {out}");
        restore();
    }

    // Two records' contents swapped (a reorder): the first of them no longer matches.
    let mut conn = sqlite(&db).await;
    sqlx::query("DROP TRIGGER audit_log_no_update")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE audit_log SET detail = CASE id WHEN 8 THEN (SELECT detail FROM audit_log WHERE id = 9) \
         ELSE (SELECT detail FROM audit_log WHERE id = 8) END WHERE id IN (8, 9)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let (ok, out) = verify(&inst);
    assert!(!ok && out.contains("record 8 was altered"), "{out}");
    restore();

    // The tail cut and the head rewound to match: the head's own MAC gives it away.
    let mut conn = sqlite(&db).await;
    for sql in [
        "DROP TRIGGER audit_log_sealed_deletes_only",
        "DROP TRIGGER audit_head_forward_only",
        "DELETE FROM audit_log WHERE id = 12",
        "UPDATE audit_head SET last_id = 11, last_mac = (SELECT mac FROM audit_log WHERE id = 11)",
    ] {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
    let (ok, out) = verify(&inst);
    assert!(!ok && out.contains("chain head was altered"), "{out}");
    restore();
    assert!(verify(&inst).0, "the restored file verifies");

    // Another key file: told apart from tampering.
    let key = inst.data().join("audit.key");
    std::fs::remove_file(&key).unwrap();
    ukey_admin::audit::AuditKey::create(&key).unwrap();
    let (ok, out) = verify(&inst);
    assert!(
        !ok && out.contains("not the key this trail was written with"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_the_triggers_refuse_changes_and_verify_catches_a_superuser_who_disables_them()
{
    let inst = Installation::postgres();
    some_changes(&inst);
    assert!(verify(&inst).0);
    let mut conn = sqlx::PgConnection::connect(inst.database_url().unwrap())
        .await
        .unwrap();
    for sql in [
        "UPDATE audit_log SET detail = '{}' WHERE id = 7",
        "DELETE FROM audit_log WHERE id = 7",
        "TRUNCATE audit_log",
        "UPDATE audit_head SET last_id = 3",
        "DELETE FROM audit_head",
    ] {
        let e = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        assert!(
            e.to_string().contains("append-only") || e.to_string().contains("only moves forward"),
            "{sql}: {e}"
        );
    }
    assert!(verify(&inst).0, "refused changes leave the trail intact");
    // A superuser bypasses triggers; the MACs do not care.
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET actor = 'cli:someone-else' WHERE id = 8")
        .execute(&mut conn)
        .await
        .unwrap();
    let (ok, out) = verify(&inst);
    assert!(!ok && out.contains("record 8 was altered"), "{out}");
    sqlx::query("DELETE FROM audit_log WHERE id = 8")
        .execute(&mut conn)
        .await
        .unwrap();
    let (ok, out) = verify(&inst);
    assert!(!ok && out.contains("record 8 is missing"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_whose_audit_record_cannot_be_written_does_not_happen() {
    let store = crate::support::Store::sqlite().await;
    let db = store.sqlite_path().unwrap();
    let api = Api::start(store, OperatorLogin::TokenAndPassword).await;
    api.unit("R", None).await;
    let sys = api.operator("sys", None, "R", &[Role::Sysadmin]).await;
    let cert = api.token_at("R").await;

    // From here the audit trail refuses every record (a full disk, a broken table…).
    let mut conn = sqlite(&db).await;
    sqlx::query(
        "CREATE TRIGGER audit_broken BEFORE INSERT ON audit_log \
         BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let before = api.audit().await.len();
    let a = api
        .call(
            &sys,
            "POST",
            "/api/v1/units",
            Some(json!({"code": "N1", "name": "新党委"})),
        )
        .await;
    assert_eq!(a.status, 503, "{}", a.text);
    assert!(
        api.service
            .storage()
            .unit(&code("N1"))
            .await
            .unwrap()
            .is_none(),
        "not created"
    );
    let a = api
        .call(
            &sys,
            "POST",
            "/api/v1/accounts",
            Some(json!({"username": "newbie", "display_name": "新人"})),
        )
        .await;
    assert_eq!(a.status, 503, "{}", a.text);
    assert!(api.service.account("newbie").await.unwrap().is_none());

    // A token login whose record cannot be written is not acknowledged.
    let login = api
        .send(Some(&cert), None, "POST", "/api/v1/sessions", None, "en")
        .await;
    assert_eq!(login.status, 503, "{}", login.text);
    let month = ukey_admin::domain::Month::containing(api.now());
    let logins: Vec<_> = api
        .service
        .logins(ukey_admin::storage::LoginQuery {
            from: month.start(),
            to: month.end(),
            under: None,
        })
        .collect()
        .await;
    assert!(logins.is_empty());
    assert_eq!(api.audit().await.len(), before);

    // The command line too.
    let inst = Installation::sqlite();
    let mut conn = sqlite(&inst.data().join("ukey-admin.db")).await;
    sqlx::query(
        "CREATE TRIGGER audit_broken BEFORE INSERT ON audit_log \
         BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let (ok, _, err) = inst.run(&["units", "add", "--code", "D", "--name", "涪陵区委"]);
    assert!(!ok, "{err}");
    let (_, list, _) = inst.run(&["units", "list"]);
    assert!(!list.contains("涪陵区委"), "{list}");
}

async fn retention(store: crate::support::Store) {
    let api = Api::start(store, OperatorLogin::Password).await;
    let real_now = OffsetDateTime::now_utc();
    let cli = Actor::cli();
    // Records 400 days old, then 100 days old.
    api.clock.set(real_now - Duration::days(400));
    api.service
        .create_account("old0", "老账户", None, &cli)
        .await
        .unwrap();
    api.service
        .create_account("old1", "老账户", None, &cli)
        .await
        .unwrap();
    let old_last = api.audit().await.last().unwrap().id;
    api.clock.set(real_now - Duration::days(100));
    api.service
        .create_account("new1", "新账户", None, &cli)
        .await
        .unwrap();
    api.clock.set(real_now);
    assert!(
        api.service.seal_audit(179, &cli).await.is_err(),
        "at least 180 days"
    );
    let (checkpoint, deleted) = api.service.seal_audit(365, &cli).await.unwrap().unwrap();
    assert_eq!(checkpoint.sealed_through, old_last);
    assert_eq!(deleted, old_last as u64);
    let report = api.service.verify_audit().await.unwrap();
    assert!(report.is_intact(), "{report}");
    assert_eq!(report.sealed_through, Some(old_last));
    assert_eq!(report.first_id, Some(old_last + 1));
    assert!(
        api.service.seal_audit(180, &cli).await.unwrap().is_none(),
        "nothing that old left"
    );

    // The database itself refuses to delete what is young or unsealed, whoever asks.
    let young = api.audit().await.last().unwrap().id;
    let delete = match api.store.sqlite_path() {
        Some(path) => {
            let mut c = sqlite(&path).await;
            sqlx::query("INSERT INTO audit_log (id, kind, at, actor, actor_roles, action, result, detail, sealed_through, prev_mac, mac) VALUES (9999, 'checkpoint', 0, 'forger', '', 'x', 'success', '{}', 9999, zeroblob(32), zeroblob(32))")
                .execute(&mut c)
                .await
                .unwrap();
            sqlx::query("DELETE FROM audit_log WHERE id = ?1")
                .bind(young)
                .execute(&mut c)
                .await
                .map(|_| ())
        }
        None => {
            let mut c = sqlx::PgConnection::connect(&api.store.postgres_url().unwrap())
                .await
                .unwrap();
            sqlx::query("INSERT INTO audit_log (id, kind, at, actor, actor_roles, action, result, detail, sealed_through, prev_mac, mac) VALUES (9999, 'checkpoint', now(), 'forger', '', 'x', 'success', '{}', 9999, decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'))")
                .execute(&mut c)
                .await
                .unwrap();
            sqlx::query("DELETE FROM audit_log WHERE id = $1")
                .bind(young)
                .execute(&mut c)
                .await
                .map(|_| ())
        }
    };
    assert!(
        delete.is_err(),
        "a record younger than 180 days is never deleted"
    );
    let report = api.service.verify_audit().await.unwrap();
    assert!(
        matches!(
            report.broken.as_ref().map(|b| &b.problem),
            Some(Problem::BeyondHead { .. })
        ),
        "the forged row is caught: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_records_past_retention_are_sealed_by_a_checkpoint_and_the_rest_still_verifies() {
    retention(crate::support::Store::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_records_past_retention_are_sealed_by_a_checkpoint_and_the_rest_still_verifies()
{
    retention(crate::support::Store::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_for_a_siem_come_as_json_lines_or_csv_with_formulas_defused() {
    let inst = Installation::sqlite();
    inst.ok(&[
        "units",
        "add",
        "--code",
        "D",
        "--name",
        "=HYPERLINK(\"http://x\",\"点我\")",
    ]);
    let csv = inst.ok(&[
        "audit",
        "export",
        "--since",
        "2000-01-01",
        "--format",
        "csv",
    ]);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "id");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(
        rows.len(),
        8,
        "six bootstrap records, the unit, and this export"
    );
    assert!(rows.iter().all(|r| !r.iter().any(|c| c.starts_with('='))));
    let units = inst.ok(&["units", "export"]);
    assert!(units.contains("'=HYPERLINK"), "{units}");
    // An export imports back: the apostrophe comes off again.
    let file = inst.dir.path().join("units.csv");
    std::fs::write(&file, &units).unwrap();
    let other = Installation::sqlite();
    other.ok(&["units", "import", file.to_str().unwrap()]);
    assert!(
        other
            .ok(&["units", "list"])
            .contains("=HYPERLINK(\"http://x\",\"点我\")")
    );
    let since_later = inst.ok(&["audit", "export", "--since", "2999-01-01"]);
    assert!(since_later.is_empty(), "{since_later}");
}
