//! Rendering of responses as etcdctl does: simple lines, JSON (bytes in base64), or tables.
//! Every renderer returns the text; [`emit`] writes it, so nothing here can panic on a closed
//! pipe.

use std::io::Write;

use base64::Engine as _;
use comfy_table::{presets::ASCII_FULL_CONDENSED, Table};
use quorum_api::etcdserverpb::{ResponseHeader, StatusResponse};
use quorum_api::mvccpb::KeyValue;
use serde_json::{json, Value};

use crate::error::{CliError, Result};

/// Writes `text` to stdout and flushes (watch output must appear at once).
pub fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| CliError::io("writing to stdout", e))
}

/// Bytes as text, invalid UTF-8 replaced.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Bytes as base64, as etcdctl's JSON output shows them.
pub fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A lease or member ID as etcdctl prints it: lowercase hexadecimal.
pub fn hex_id(id: u64) -> String {
    format!("{id:x}")
}

/// Parses a lease ID as printed by [`hex_id`].
pub fn parse_hex_id(s: &str) -> Result<i64> {
    let t = s.trim().trim_start_matches("0x");
    u64::from_str_radix(t, 16)
        .ok()
        .and_then(|v| i64::try_from(v).ok())
        .ok_or_else(|| {
            CliError::usage(format!(
                "invalid lease ID {s:?}: expected the hexadecimal ID `lease grant` printed"
            ))
        })
}

/// JSON of a response header.
pub fn header_json(h: Option<&ResponseHeader>) -> Value {
    let d = ResponseHeader::default();
    let h = h.unwrap_or(&d);
    json!({
        "cluster_id": h.cluster_id,
        "member_id": h.member_id,
        "revision": h.revision,
        "raft_term": h.raft_term,
    })
}

/// JSON of a key-value pair.
pub fn kv_json(kv: &KeyValue) -> Value {
    json!({
        "key": b64(&kv.key),
        "create_revision": kv.create_revision,
        "mod_revision": kv.mod_revision,
        "version": kv.version,
        "value": b64(&kv.value),
        "lease": kv.lease,
    })
}

/// How `get` prints pairs in the simple format.
#[derive(Debug, Clone, Copy, Default)]
pub struct KvStyle {
    /// Keys only.
    pub keys_only: bool,
    /// Values only.
    pub values_only: bool,
}

/// Simple lines of a list of pairs: key, then value.
pub fn kvs_simple(kvs: &[KeyValue], style: KvStyle) -> String {
    let mut s = String::new();
    for kv in kvs {
        if !style.values_only {
            s.push_str(&text(&kv.key));
            s.push('\n');
        }
        if !style.keys_only {
            s.push_str(&text(&kv.value));
            s.push('\n');
        }
    }
    s
}

/// A table of pairs with their revisions.
pub fn kvs_table(kvs: &[KeyValue]) -> String {
    table(
        &["KEY", "VALUE", "CREATE REV", "MOD REV", "VERSION", "LEASE"],
        kvs.iter()
            .map(|kv| {
                vec![
                    text(&kv.key),
                    text(&kv.value),
                    kv.create_revision.to_string(),
                    kv.mod_revision.to_string(),
                    kv.version.to_string(),
                    if kv.lease == 0 {
                        String::new()
                    } else {
                        hex_id(kv.lease as u64)
                    },
                ]
            })
            .collect(),
    )
}

/// An ASCII table (etcdctl's style) with a trailing newline.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_style(ASCII_FULL_CONDENSED)
        .force_no_tty()
        .set_header(header.to_vec());
    for r in rows {
        t.add_row(r);
    }
    format!("{t}\n")
}

/// Pretty JSON with a trailing newline.
pub fn json_text(v: &Value) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    )
}

/// Byte counts as etcdctl prints them (kB, MB, ... in powers of 1000).
pub fn human_bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n.max(0) as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.0} {}", UNITS[i])
    }
}

/// JSON of a member status.
pub fn status_json(endpoint: &str, s: &StatusResponse) -> Value {
    json!({
        "Endpoint": endpoint,
        "Status": {
            "header": header_json(s.header.as_ref()),
            "version": s.version,
            "dbSize": s.db_size,
            "leader": s.leader,
            "raftIndex": s.raft_index,
            "raftTerm": s.raft_term,
            "raftAppliedIndex": s.raft_applied_index,
            "errors": s.errors,
            "dbSizeInUse": s.db_size_in_use,
            "isLearner": s.is_learner,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_ids_round_trip() {
        assert_eq!(hex_id(0x694d77aa9e38260f), "694d77aa9e38260f");
        assert_eq!(
            parse_hex_id("694d77aa9e38260f").unwrap(),
            0x694d77aa9e38260f
        );
        assert_eq!(parse_hex_id("0x10").unwrap(), 16);
        assert!(parse_hex_id("zz").is_err());
        assert!(parse_hex_id("ffffffffffffffff").is_err());
    }

    #[test]
    fn human_bytes_like_etcdctl() {
        assert_eq!(human_bytes(20), "20 B");
        assert_eq!(human_bytes(20_480), "20 kB");
        assert_eq!(human_bytes(3_100_000), "3 MB");
    }

    #[test]
    fn simple_kvs() {
        let kvs = vec![KeyValue {
            key: "k".into(),
            value: "v".into(),
            ..Default::default()
        }];
        assert_eq!(kvs_simple(&kvs, KvStyle::default()), "k\nv\n");
        let keys = KvStyle {
            keys_only: true,
            ..Default::default()
        };
        assert_eq!(kvs_simple(&kvs, keys), "k\n");
        let values = KvStyle {
            values_only: true,
            ..Default::default()
        };
        assert_eq!(kvs_simple(&kvs, values), "v\n");
    }
}
