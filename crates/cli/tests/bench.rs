//! `quorumctl bench` against a real single-member etcd (skipped with a notice when etcd is
//! absent): every workload runs a tiny load and its JSON report is checked.

mod common;

use common::{assert_no_panic, etcd_or_skip, stderr};
use serde_json::Value;

fn bench(etcd: &common::Etcd, args: &[&str]) -> Value {
    let mut a = vec!["bench"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--json", "--no-progress"]);
    let out = etcd.ctl(&a);
    assert_no_panic(&out);
    assert!(out.status.success(), "bench {args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_clean(r: &Value, ok: u64) {
    assert_eq!(r["ok"], ok, "{r}");
    assert_eq!(r["errors_total"], 0, "{r}");
    let lat = &r["latency_us"];
    let (p50, p99, max) = (
        lat["p50"].as_u64().unwrap(),
        lat["p99"].as_u64().unwrap(),
        lat["max"].as_u64().unwrap(),
    );
    assert!(p50 > 0 && p50 <= p99 && p99 <= max, "{r}");
    assert!(r["throughput"].as_f64().unwrap() > 0.0, "{r}");
}

#[test]
fn workloads_against_etcd() {
    let Some(etcd) = etcd_or_skip("workloads_against_etcd") else {
        return;
    };
    let r = bench(
        &etcd,
        &[
            "put",
            "--total",
            "200",
            "--clients",
            "4",
            "--conns",
            "2",
            "--key-space",
            "50",
            "--sequential-keys",
            "--key-prefix",
            "b/",
        ],
    );
    assert_clean(&r, 200);
    assert_eq!(
        (r["conns"].as_u64(), r["clients"].as_u64()),
        (Some(2), Some(4))
    );
    // Sequential keys over a space of 50: exactly b/000000 .. b/000049 exist.
    assert_eq!(etcd.ok(&["get", "b/", "--prefix", "--count-only"]), "50\n");
    assert_eq!(
        etcd.ok(&["get", "b/", "--prefix", "--keys-only", "--limit", "1"]),
        "b/000000\n"
    );

    for c in ["l", "s"] {
        let r = bench(
            &etcd,
            &[
                "range",
                "--total",
                "100",
                "--clients",
                "3",
                "--key-prefix",
                "b/",
                "--key-space",
                "50",
                "--consistency",
                c,
            ],
        );
        assert_clean(&r, 100);
    }
    let r = bench(
        &etcd,
        &[
            "range",
            "--total",
            "20",
            "--key-prefix",
            "b/",
            "--range-prefix",
        ],
    );
    assert_clean(&r, 20);

    // Compare-and-swap on 5 keys from 2 clients: some swaps lose, none errs.
    let r = bench(
        &etcd,
        &[
            "txn-put",
            "--total",
            "100",
            "--clients",
            "2",
            "--key-space",
            "5",
            "--key-prefix",
            "t/",
        ],
    );
    assert_clean(&r, 100);
    assert_eq!(etcd.ok(&["get", "t/", "--prefix", "--count-only"]), "5\n");

    let r = bench(
        &etcd,
        &[
            "mixed",
            "--total",
            "100",
            "--clients",
            "2",
            "--read-ratio",
            "0.5",
        ],
    );
    assert_clean(&r, 100);

    let r = bench(
        &etcd,
        &["lease-keepalive", "--total", "50", "--clients", "2"],
    );
    assert_clean(&r, 50);
    assert_eq!(
        etcd.ok(&["lease", "list"]).lines().count(),
        3,
        "two leases listed"
    );

    // 10 puts seen by 6 watchers on 2 streams: 60 events.
    let r = bench(
        &etcd,
        &[
            "watch",
            "--total",
            "10",
            "--watchers",
            "6",
            "--watch-streams",
            "2",
            "--conns",
            "2",
            "--rate",
            "50",
        ],
    );
    assert_clean(&r, 60);
    assert_eq!(r["unit"], "events");
}

#[test]
fn duration_rate_and_text_report() {
    let Some(etcd) = etcd_or_skip("duration_rate_and_text_report") else {
        return;
    };
    let out = etcd.ctl(&[
        "bench",
        "put",
        "--duration",
        "1s",
        "--rate",
        "50",
        "--no-progress",
    ]);
    assert_no_panic(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("Workload:    put ("), "{text}");
    assert!(text.contains("rate limit 50/s"), "{text}");
    assert!(text.contains("Latency µs:  p50 "), "{text}");
    assert!(text.contains("Errors:      none"), "{text}");
    // 1 s at 50/s: about 50 requests (slot 0 is at once, so at most 51).
    let done: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Completed:   "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!((40..=51).contains(&done), "{text}");
}

#[test]
fn unreachable_endpoint_fails_cleanly() {
    let port = common::free_port();
    let out = common::run(
        &format!("127.0.0.1:{port}"),
        &["bench", "put", "--total", "1", "--dial-timeout", "300ms"],
        None,
    );
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot connect"), "{}", stderr(&out));
}
