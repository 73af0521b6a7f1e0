//! Member and cluster identifiers, derived deterministically (as etcd does) so that every member
//! of a new cluster computes the same ids from the same `--initial-cluster` and token.

use quorum_raft::NodeId;
use sha2::{Digest, Sha256};

use crate::config::InitialMember;

/// Identifies a cluster; stored in every member's data dir so that a member never joins another
/// cluster's data by mistake.
pub type ClusterId = u64;

fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let digest = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    // 0 means "no node" to Raft; never hand it out.
    u64::from_be_bytes(b).max(1)
}

/// The id of a member with these peer URLs in the cluster named by `token`.
pub fn member_id(peer_urls: &[String], token: &str) -> NodeId {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let joined = urls.join(",");
    hash64(&[joined.as_bytes(), token.as_bytes()])
}

/// The id of a cluster with these initial members.
pub fn cluster_id(member_ids: &[NodeId], token: &str) -> ClusterId {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
    hash64(&[&bytes, token.as_bytes()])
}

/// A fresh id for a member added at run time (etcd's `NewMember`: a hash of its peer URLs, the
/// cluster and the time, so that re-adding the same URLs later gives another id). `nonce`
/// differs between attempts; 0 is never returned.
pub fn new_member_id(peer_urls: &[String], cluster_id: ClusterId, nonce: u64) -> NodeId {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let joined = urls.join(",");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    hash64(&[
        joined.as_bytes(),
        &cluster_id.to_be_bytes(),
        &now.to_be_bytes(),
        &nonce.to_be_bytes(),
    ])
}

/// Ids of the initial cluster's members, in the order given, and the cluster id.
pub fn initial_ids(members: &[InitialMember], token: &str) -> (Vec<NodeId>, ClusterId) {
    let ids: Vec<NodeId> = members
        .iter()
        .map(|m| member_id(&m.peer_urls, token))
        .collect();
    let cid = cluster_id(&ids, token);
    (ids, cid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_depend_on_token_and_urls() {
        let a = member_id(&["http://127.0.0.1:2380".into()], "t");
        assert_eq!(a, member_id(&["http://127.0.0.1:2380".into()], "t"));
        assert_ne!(a, member_id(&["http://127.0.0.1:2381".into()], "t"));
        assert_ne!(a, member_id(&["http://127.0.0.1:2380".into()], "u"));
        assert_ne!(a, 0);
        assert_eq!(cluster_id(&[1, 2, 3], "t"), cluster_id(&[3, 1, 2], "t"));
        assert_ne!(cluster_id(&[1, 2, 3], "t"), cluster_id(&[1, 2], "t"));
    }

    #[test]
    fn run_time_ids_differ_per_attempt() {
        let urls = vec!["http://127.0.0.1:2380".to_string()];
        let a = new_member_id(&urls, 7, 1);
        let b = new_member_id(&urls, 7, 2);
        assert_ne!(a, b);
        assert_ne!(a, 0);
    }
}
