//! Linearizable reads: ReadIndex (batched heartbeat rounds) and lease reads.

use bytes::Bytes;

use crate::testing::{config, storage_with_log, Network};
use crate::{MessageType, ReadOnlyOption, ReadState};

fn rs(index: u64, ctx: &'static [u8]) -> ReadState {
    ReadState {
        index,
        request_ctx: Bytes::from_static(ctx),
    }
}

#[test]
fn leader_read_index_waits_for_a_quorum_round() {
    let mut net = Network::new(3, true, true);
    net.campaign(1);
    net.propose(1, b"x");
    net.isolate(1);
    net.node(1).read_index(Bytes::from_static(b"r1")).unwrap();
    net.stabilize();
    assert!(net.read_states[&1].is_empty(), "no quorum, no read");
    net.heal();
    net.tick_all(1);
    assert_eq!(net.read_states[&1], vec![rs(2, b"r1")]);
}

#[test]
fn one_heartbeat_round_serves_a_batch_of_reads() {
    let mut net = Network::new(3, true, true);
    net.campaign(1);
    let before = net.delivered.len();
    for ctx in [&b"a"[..], b"b", b"c", b"d"] {
        net.node(1).read_index(Bytes::from_static(ctx)).unwrap();
    }
    net.stabilize();
    let heartbeats = net.delivered[before..]
        .iter()
        .filter(|m| m.msg_type == MessageType::Heartbeat)
        .count();
    assert_eq!(
        heartbeats, 2,
        "one round to the two followers for all four reads"
    );
    assert_eq!(
        net.read_states[&1],
        vec![rs(1, b"a"), rs(1, b"b"), rs(1, b"c"), rs(1, b"d")]
    );
}

#[test]
fn follower_read_index_is_forwarded() {
    let mut net = Network::new(3, true, true);
    net.campaign(1);
    net.propose(1, b"x");
    net.node(2).read_index(Bytes::from_static(b"f")).unwrap();
    net.stabilize();
    assert_eq!(net.read_states[&2], vec![rs(2, b"f")]);
}

#[test]
fn new_leader_serves_no_read_before_committing_in_its_term() {
    let ids = [1, 2, 3];
    let mut net = Network::with_configs(
        ids.iter()
            .map(|id| {
                (
                    config(*id, false, false),
                    storage_with_log(&ids, &[1, 1], 1),
                )
            })
            .collect(),
    );
    net.drop_types.push(MessageType::Append);
    net.campaign(1);
    net.node(1).read_index(Bytes::from_static(b"r")).unwrap();
    net.tick_all(3);
    assert!(net.read_states[&1].is_empty());
    net.drop_types.clear();
    net.tick_all(2);
    assert_eq!(net.read_states[&1], vec![rs(3, b"r")]);
}

#[test]
fn lease_read_needs_no_round_trip() {
    let ids = [1, 2, 3];
    let mut net = Network::with_configs(
        ids.iter()
            .map(|id| {
                let mut c = config(*id, true, true);
                c.read_only_option = ReadOnlyOption::LeaseBased;
                (c, storage_with_log(&ids, &[], 0))
            })
            .collect(),
    );
    net.campaign(1);
    let before = net.delivered.len();
    net.node(1).read_index(Bytes::from_static(b"l")).unwrap();
    net.stabilize();
    assert_eq!(net.delivered.len(), before, "no messages for a lease read");
    assert_eq!(net.read_states[&1], vec![rs(1, b"l")]);
}

#[test]
fn single_voter_reads_at_once() {
    let mut net = Network::new(1, true, true);
    net.campaign(1);
    net.node(1).read_index(Bytes::from_static(b"s")).unwrap();
    net.stabilize();
    assert_eq!(net.read_states[&1], vec![rs(1, b"s")]);
}
