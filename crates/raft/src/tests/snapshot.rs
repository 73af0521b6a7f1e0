//! Log compaction and the install-snapshot flow.

use bytes::Bytes;

use crate::testing::{config, storage_with_log, Network};
use crate::tracker::ProgressState;
use crate::{ConfState, Message, MessageType, RawNode, Snapshot, SnapshotMetadata, Storage};

#[test]
fn lagging_follower_gets_snapshot_then_entries() {
    let mut net = Network::new(3, true, true);
    net.campaign(1);
    net.isolate(3);
    for d in [&b"a"[..], b"b", b"c"] {
        net.node(1).propose(Bytes::from_static(d)).unwrap();
        net.stabilize();
    }
    net.compact(1);
    net.propose(1, b"d");
    assert!(net.nodes[&1].storage().first_index().unwrap() > 1);
    net.heal();
    net.tick_all(3);
    let snaps = net
        .delivered
        .iter()
        .filter(|m| m.msg_type == MessageType::Snapshot)
        .count();
    assert_eq!(snaps, 1, "exactly one snapshot is sent");
    let want: Vec<Bytes> = [&b"a"[..], b"b", b"c", b"d"]
        .iter()
        .map(|d| Bytes::from_static(d))
        .collect();
    assert_eq!(net.applied_data(3), want);
    assert_eq!(net.commit(3), net.commit(1));
    let st = net.nodes[&1].status();
    assert_eq!(st.progress[&3].state, ProgressState::Replicate);
    assert_eq!(st.progress[&3].matched, st.last_index);
    net.check_safety();
}

#[test]
fn failed_snapshot_returns_to_probe_and_is_retried() {
    let mut net = Network::new(3, false, false);
    net.campaign(1);
    net.isolate(3);
    net.propose(1, b"a");
    net.compact(1);
    net.heal();
    // Lose the snapshot in transit.
    net.drop_types.push(MessageType::Snapshot);
    net.tick_all(2);
    let st = net.nodes[&1].status();
    assert_eq!(st.progress[&3].state, ProgressState::Snapshot);
    net.node(1).report_snapshot(3, false);
    assert_eq!(
        net.nodes[&1].status().progress[&3].state,
        ProgressState::Probe
    );
    net.drop_types.clear();
    net.tick_all(3);
    assert_eq!(net.applied_data(3), vec![Bytes::from_static(b"a")]);
}

#[test]
fn stale_snapshot_is_ignored() {
    let s = storage_with_log(&[1, 2], &[1, 1, 1], 1);
    let mut cfg = config(2, false, false);
    cfg.applied = 0;
    let mut node = RawNode::new(&cfg, s).unwrap();
    node.step(Message {
        msg_type: MessageType::Heartbeat,
        from: 1,
        to: 2,
        term: 1,
        commit: 3,
        ..Message::default()
    })
    .unwrap();
    let snap = Snapshot {
        metadata: SnapshotMetadata {
            index: 2,
            term: 1,
            conf_state: ConfState {
                voters: vec![1, 2],
                ..ConfState::default()
            },
        },
        data: Bytes::new(),
    };
    node.step(Message {
        msg_type: MessageType::Snapshot,
        from: 1,
        to: 2,
        term: 1,
        snapshot: Some(snap),
        ..Message::default()
    })
    .unwrap();
    let rd = node.ready();
    assert!(
        rd.snapshot.is_none(),
        "a snapshot below commit changes nothing"
    );
    let resp = rd
        .persisted_messages
        .iter()
        .find(|m| m.msg_type == MessageType::AppendResponse)
        .unwrap();
    assert_eq!(resp.index, 3);
}
