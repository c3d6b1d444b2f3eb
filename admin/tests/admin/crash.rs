//! `kill -9` of `ukey-admin serve` in the middle of 1,000 concurrent logins: every login the
//! client saw acknowledged is in the database afterwards.

use crate::support::{Installation, TlsClient};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use ukey_admin::config::Config;
use uuid::Uuid;

const LOGINS: usize = 1000;
const TOKENS: usize = 10;
/// Kill once this many logins are acknowledged: well inside the run.
const KILL_AFTER: usize = 150;

async fn acknowledged_logins_survive_kill_9(inst: Installation) {
    inst.ok(&["units", "add", "--code", "FL", "--name", "涪陵区委"]);
    let mut clients = Vec::new();
    for i in 0..TOKENS {
        let unit = format!("U{i}");
        inst.ok(&[
            "units",
            "add",
            "--code",
            &unit,
            "--name",
            &format!("第{i}党支部"),
            "--parent",
            "FL",
        ]);
        let serial = format!("K{i}");
        let cert = inst.issue_token(&unit, &format!("第{i}党支部"), &serial);
        inst.ok(&[
            "tokens",
            "register",
            "--serial",
            &serial,
            "--cert",
            cert.cert_path.to_str().unwrap(),
            "--unit",
            &unit,
        ]);
        // Full handshakes: no resumption.
        clients.push(TlsClient::with_resumption(
            &inst.root_pem(),
            Some(&cert),
            false,
        ));
    }
    let (mut server, addr) = inst.serve();
    let acked: Arc<Mutex<Vec<Uuid>>> = Arc::default();
    let mut tasks = Vec::new();
    for i in 0..LOGINS {
        let client = clients[i % TOKENS].clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let Ok(mut conn) = client.connect(addr).await else {
                return;
            };
            if let Ok((201, body)) = conn.request("POST", "/api/v1/sessions", None, "").await {
                let id: Uuid = body["session_id"].as_str().unwrap().parse().unwrap();
                acked.lock().unwrap().push(id);
            }
        }));
    }
    while acked.lock().unwrap().len() < KILL_AFTER {
        assert!(
            server.try_wait().unwrap().is_none(),
            "the server died on its own"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() < LOGINS,
        "the kill came after every login finished; nothing was tested"
    );

    let config = Config::load(&inst.config, []).unwrap();
    let storage = config.database_location().open().await.unwrap();
    let mut missing = 0;
    for id in &acked {
        if storage.session(*id).await.unwrap().is_none() {
            missing += 1;
        }
    }
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged logins were lost",
        acked.len()
    );
    println!(
        "{} of {LOGINS} logins acknowledged before kill -9; all in the database",
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_logins_survive_kill_9_on_sqlite() {
    acknowledged_logins_survive_kill_9(Installation::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_logins_survive_kill_9_on_postgres() {
    acknowledged_logins_survive_kill_9(Installation::postgres()).await;
}
