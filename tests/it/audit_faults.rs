//! The audit trail under faults: `kill -9` of the real binary in strict mode (every 200 a
//! client received has its committed decision event, and the chain still verifies). The
//! Postgres outage test lives in [`crate::audit`], the page in [`crate::audit_page`].

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;
use portcullis::audit::sqlite::SqliteStore;
use portcullis::audit::verify::verify;
use portcullis::audit::{AuditStore, StoredEvent};

pub async fn all_events(db: &Path) -> (SqliteStore, Vec<StoredEvent>) {
    let store = SqliteStore::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let events = store.verify_page(None, 1_000_000).await.unwrap();
    (store, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_strict_mode_loses_no_answered_decision() {
    let dir = tempfile::tempdir().unwrap();
    let up = echo_upstream().await;
    let port = free_port();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\n[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"off\"\n\
             [audit]\nurl = \"sqlite://{dir}/audit.db\"\nspool_dir = \"{dir}/spool\"\n\
             instance = \"gate-kill\"\ndurability = \"strict\"\n{routes}",
            dir = dir.path().display(),
            routes = public_route("open", "/", &[up], "")
        ),
    )
    .unwrap();
    let mut binary = Binary::spawn(&["serve", "--config", config.to_str().unwrap()], port).await;
    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    // Kill once the load is well under way (a fixed delay is too short on a busy machine).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let answered = answered.clone();
        tasks.push(tokio::spawn(async move {
            let client = client();
            let mut i = 0;
            while Instant::now() < deadline {
                i += 1;
                let url = format!("http://127.0.0.1:{port}/w{worker}/{i}");
                let Ok(response) = client.get(url).send().await else {
                    break;
                };
                if response.status() != 200 {
                    continue;
                }
                // What the upstream received: the decision it was sent under.
                let Ok(body) = response.json::<serde_json::Value>().await else {
                    break;
                };
                let id = body["headers"]["x-portcullis-decision-id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                answered.lock().unwrap().push(id);
            }
        }));
    }
    let started = Instant::now();
    while answered.lock().unwrap().len() < 200 && started.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = answered.lock().unwrap().len();
    binary.0.kill().unwrap(); // SIGKILL: no drain, no shutdown hooks.
    binary.0.wait().unwrap();
    for task in tasks {
        task.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(
        before >= 20,
        "load too light to mean anything: {before} answers"
    );

    let (store, events) = all_events(&dir.path().join("audit.db")).await;
    let decided: HashSet<&str> = events
        .iter()
        .filter(|e| e.event.kind == "request" && e.event.decision.as_deref() == Some("allow"))
        .filter_map(|e| e.event.decision_id.as_deref())
        .collect();
    let missing: Vec<&String> = answered
        .iter()
        .filter(|id| !decided.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered requests have no committed decision: {:?}",
        missing.len(),
        answered.len(),
        &missing[..missing.len().min(5)]
    );
    let report = verify(&store).await.unwrap();
    assert_eq!(report.broken, None, "chain broken after kill -9");
    eprintln!(
        "kill -9: {} answers, {} events committed, chain of {} verified",
        answered.len(),
        events.len(),
        report.events
    );
}
