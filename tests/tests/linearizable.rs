//! Concurrent clients against a real 3-member cluster while the leader is killed and restarted
//! and a follower is paused: the recorded history (every invocation and answer, with errors as
//! unknown outcomes) must be linearizable, as checked by crates/lincheck.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use quorum_lincheck::{Checker, Input, Output, Recorder, Verdict};
use quorum_tests::Cluster;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_quorum-test-server"))
}

const KEYS: [&str; 3] = ["x", "y", "z"];

async fn client_loop(
    process: u64,
    endpoint: String,
    recorder: Arc<Mutex<Recorder>>,
    epoch: Instant,
    stop_at: Instant,
) {
    let opts = etcd_client::ConnectOptions::new()
        .with_timeout(Duration::from_secs(3))
        .with_connect_timeout(Duration::from_secs(1));
    let mut client = loop {
        if let Ok(c) = Client::connect([endpoint.clone()], Some(opts.clone())).await {
            break c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let now = || epoch.elapsed().as_nanos() as u64;
    let mut n = 0u64;
    let mut failures = 0usize;
    while Instant::now() < stop_at {
        n += 1;
        // Pace the clients: the checker's work grows quickly with concurrency and unknown
        // outcomes, and a few hundred operations per client exercise the faults well.
        tokio::time::sleep(Duration::from_millis(if failures > 0 { 200 } else { 15 })).await;
        let key = KEYS[((n + process) % KEYS.len() as u64) as usize].to_string();
        let choice = (n * 7 + process * 3) % 10;
        if choice < 4 {
            let id =
                recorder
                    .lock()
                    .unwrap()
                    .invoke(process, Input::Get { key: key.clone() }, now());
            let r = client.get(key.as_str(), None).await;
            failures = usize::from(r.is_err());
            if let Ok(r) = r {
                let value = r
                    .kvs()
                    .first()
                    .map(|kv| String::from_utf8_lossy(kv.value()).to_string());
                recorder
                    .lock()
                    .unwrap()
                    .ok(id, Output::Get { value }, now());
            }
        } else if choice < 8 {
            let value = format!("{process}-{n}");
            let id = recorder.lock().unwrap().invoke(
                process,
                Input::Put {
                    key: key.clone(),
                    value: value.clone(),
                },
                now(),
            );
            let ok = client.put(key.as_str(), value, None).await.is_ok();
            failures = usize::from(!ok);
            if ok {
                recorder.lock().unwrap().ok(id, Output::Put, now());
            }
        } else {
            // Compare-and-swap on the value we last saw (or absence).
            let seen = client
                .get(key.as_str(), None)
                .await
                .ok()
                .and_then(|r| r.kvs().first().map(|kv| kv.value().to_vec()));
            let expected = seen.map(|v| String::from_utf8_lossy(&v).to_string());
            let new = format!("{process}-{n}-cas");
            let id = recorder.lock().unwrap().invoke(
                process,
                Input::Cas {
                    key: key.clone(),
                    expected: expected.clone(),
                    new: new.clone(),
                },
                now(),
            );
            let cmp = match &expected {
                Some(v) => Compare::value(key.as_str(), CompareOp::Equal, v.as_str()),
                None => Compare::version(key.as_str(), CompareOp::Equal, 0),
            };
            let txn = Txn::new()
                .when([cmp])
                .and_then([TxnOp::put(key.as_str(), new, None)]);
            let r = client.txn(txn).await;
            failures = usize::from(r.is_err());
            if let Ok(r) = r {
                recorder.lock().unwrap().ok(
                    id,
                    Output::Cas {
                        succeeded: r.succeeded(),
                    },
                    now(),
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_history_under_leader_kill_and_pause_is_linearizable() {
    let mut cluster = Cluster::start(binary(), 3, &[]);
    let eps = cluster.endpoints();
    let recorder = Arc::new(Mutex::new(Recorder::new()));
    let epoch = Instant::now();
    let stop_at = epoch + Duration::from_secs(12);
    let mut tasks = Vec::new();
    for p in 0..6u64 {
        let ep = eps[(p % 3) as usize].clone();
        tasks.push(tokio::spawn(client_loop(
            p,
            ep,
            recorder.clone(),
            epoch,
            stop_at,
        )));
    }
    // Faults while the clients run: kill member 0 (often the leader) and restart it; pause
    // member 1 for a while.
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.kill(0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.restart(0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.pause(1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.resume(1);
    for t in tasks {
        t.await.unwrap();
    }
    let history = Arc::try_unwrap(recorder)
        .unwrap()
        .into_inner()
        .unwrap()
        .into_history()
        .unwrap();
    let completed = history
        .operations()
        .iter()
        .filter(|o| o.output().is_some())
        .count();
    assert!(
        completed > 100,
        "too few completed operations to mean anything: {completed}"
    );
    eprintln!(
        "checking {} operations ({completed} completed)",
        history.len()
    );
    match Checker::new().check(&history) {
        Verdict::Linearizable => {}
        other => {
            let mut out = Vec::new();
            let _ = history.write_json_lines(&mut out);
            let path = std::env::temp_dir().join("quorum-nonlinearizable-history.jsonl");
            let _ = std::fs::write(&path, out);
            panic!(
                "history of {} operations is not linearizable ({other:?}); saved to {}",
                history.len(),
                path.display()
            );
        }
    }

    // The checker is not vacuous on this history: one read changed to a value nobody wrote
    // must be caught.
    let mut ops = history.operations().to_vec();
    let victim = ops
        .iter_mut()
        .rev()
        .find(|o| matches!(o.output(), Some(Output::Get { value: Some(_) })))
        .expect("a completed read of a present key");
    if let quorum_lincheck::Outcome::Ok { output, .. } = &mut victim.outcome {
        *output = Output::Get {
            value: Some("never-written".to_string()),
        };
    }
    let corrupted = quorum_lincheck::History::new(ops).unwrap();
    assert!(
        matches!(
            Checker::new().check(&corrupted),
            Verdict::NotLinearizable(_)
        ),
        "the checker accepted a read of a value never written"
    );
}
