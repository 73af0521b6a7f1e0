//! Log replication, commitment, the Ready cycle, Figures 7 and 8.

use bytes::Bytes;

use crate::testing::{config, storage_with_log, Network};
use crate::{Config, Message, MessageType, RawNode, Role};

fn log_of(terms: &[u64]) -> Vec<(u64, u64)> {
    terms
        .iter()
        .enumerate()
        .map(|(i, t)| (i as u64 + 1, *t))
        .collect()
}

#[test]
fn replicates_and_applies_in_order() {
    let mut net = Network::new(3, true, true);
    net.campaign(1);
    for d in [&b"a"[..], b"b", b"c"] {
        net.node(1).propose(Bytes::from_static(d)).unwrap();
    }
    net.stabilize();
    let want: Vec<Bytes> = [&b"a"[..], b"b", b"c"]
        .iter()
        .map(|d| Bytes::from_static(d))
        .collect();
    for id in 1..=3 {
        assert_eq!(net.applied_data(id), want);
        assert_eq!(net.commit(id), 4);
    }
    net.check_safety();
}

#[test]
fn leader_counts_itself_only_after_persisting() {
    // Single voter: nothing commits until advance() acknowledges the entries as durable.
    let s = storage_with_log(&[1], &[], 0);
    let mut node = RawNode::new(&config(1, false, false), s).unwrap();
    node.campaign().unwrap();
    assert_eq!(node.status().soft_state.role, Role::Leader);
    let rd = node.ready();
    assert_eq!(rd.entries.len(), 1);
    assert_eq!(
        rd.hard_state.unwrap().commit,
        0,
        "not durable yet: not committed"
    );
    node.storage_mut().append(&rd.entries).unwrap();
    node.storage_mut().set_hard_state(rd.hard_state.unwrap());
    node.advance();
    let rd = node.ready();
    assert_eq!(rd.hard_state.unwrap().commit, 1);
    assert_eq!(rd.committed_entries.len(), 1);
    node.advance();
    assert_eq!(node.status().applied, 1);

    // Three voters: the leader's Appends leave at once, in parallel with its own fsync, and
    // one follower's durable ack plus the leader's own persist commit the entry.
    let mut net = Network::new(3, false, false);
    net.campaign(1);
    net.node(1).propose(Bytes::from_static(b"x")).unwrap();
    let rd = net.node(1).ready();
    assert_eq!(rd.entries.len(), 1);
    assert!(rd
        .messages
        .iter()
        .any(|m| m.msg_type == MessageType::Append && m.entries.len() == 1));
    assert!(rd.persisted_messages.is_empty());
    // A follower acks before the leader's own write is durable: not committed yet.
    net.node(1)
        .step(Message {
            msg_type: MessageType::AppendResponse,
            from: 2,
            to: 1,
            term: 1,
            index: 2,
            ..Message::default()
        })
        .unwrap();
    assert_eq!(net.commit(1), 1);
    net.node(1).storage_mut().append(&rd.entries).unwrap();
    net.node(1).advance();
    assert_eq!(net.commit(1), 2);
}

#[test]
fn follower_append_response_waits_for_persist() {
    let mut net = Network::new(3, false, false);
    net.campaign(1);
    net.node(1).propose(Bytes::from_static(b"x")).unwrap();
    let rd = net.node(1).ready();
    let app = rd
        .messages
        .iter()
        .find(|m| m.to == 2 && m.msg_type == MessageType::Append)
        .unwrap()
        .clone();
    net.node(2).step(app).unwrap();
    let rd2 = net.node(2).ready();
    assert_eq!(rd2.entries.len(), 1);
    assert!(rd2.messages.is_empty());
    assert_eq!(
        rd2.persisted_messages[0].msg_type,
        MessageType::AppendResponse
    );
    assert_eq!(rd2.persisted_messages[0].index, 2);
}

/// Raft paper Figure 7: whatever a follower's log looks like (missing, extra or conflicting
/// entries), the new leader brings it to exactly its own log.
#[test]
fn figure_7_followers_converge_to_leader_log() {
    let leader_log = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let followers: [&[u64]; 6] = [
        &[1, 1, 1, 4, 4, 5, 5, 6, 6],
        &[1, 1, 1, 4],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
        &[1, 1, 1, 4, 4, 4, 4],
        &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    ];
    for (case, flog) in followers.iter().enumerate() {
        let ids = [1, 2, 3];
        let fterm = *flog.last().unwrap();
        let mut net = Network::with_configs(vec![
            (
                config(1, false, false),
                storage_with_log(&ids, &leader_log, 7),
            ),
            (config(2, false, false), storage_with_log(&ids, flog, fterm)),
            (config(3, false, false), storage_with_log(&ids, &[], 0)),
        ]);
        net.campaign(1);
        assert_eq!(net.leader(), Some(1), "case {case}");
        net.propose(1, b"new");
        let mut want = log_of(&leader_log);
        want.push((11, 8));
        want.push((12, 8));
        assert_eq!(net.log_terms(1), want, "case {case}");
        assert_eq!(net.log_terms(2), want, "case {case}: follower converges");
        assert_eq!(
            net.log_terms(3),
            want,
            "case {case}: empty follower converges"
        );
        assert_eq!(net.commit(2), 12);
        net.check_safety();
    }
}

/// Fast backtracking: a follower with a long conflicting tail is found in O(terms) round
/// trips, not O(entries).
#[test]
fn fast_backtracking_skips_whole_terms() {
    let ids = [1, 2, 3];
    let mut leader_log = vec![1u64; 5];
    leader_log.extend(std::iter::repeat_n(3, 100));
    let mut flog = vec![1u64; 5];
    flog.extend(std::iter::repeat_n(2, 200));
    let mut net = Network::with_configs(vec![
        (
            config(1, false, false),
            storage_with_log(&ids, &leader_log, 3),
        ),
        (config(2, false, false), storage_with_log(&ids, &flog, 2)),
        (config(3, false, false), storage_with_log(&ids, &[], 0)),
    ]);
    net.campaign(1);
    let rejects = net
        .delivered
        .iter()
        .filter(|m| m.msg_type == MessageType::AppendResponse && m.reject && m.from == 2)
        .count();
    assert!(rejects <= 3, "{rejects} rejections");
    assert_eq!(net.log_terms(2), net.log_terms(1));
}

/// Raft paper Figure 8: an entry of an older term stored on a majority is not committed by
/// counting replicas; it commits only once an entry of the leader's term does.
#[test]
fn figure_8_old_term_entries_not_committed_by_counting() {
    let ids = [1, 2, 3, 4, 5];
    // 1 holds an entry of term 2 at index 2 that no one else has; it is elected in term 4.
    let cfg = Config {
        pre_vote: false,
        check_quorum: false,
        ..Config::new(1)
    };
    let mut node = RawNode::new(&cfg, storage_with_log(&ids, &[1, 2], 3)).unwrap();
    node.campaign().unwrap();
    for from in [2, 3] {
        node.step(Message {
            msg_type: MessageType::VoteResponse,
            from,
            to: 1,
            term: 4,
            ..Message::default()
        })
        .unwrap();
    }
    assert_eq!(node.status().soft_state.role, Role::Leader);
    let rd = node.ready();
    node.storage_mut().append(&rd.entries).unwrap(); // the no-op at index 3, term 4
    node.advance();
    // 2 and 3 store index 2 (term 2): a majority with the leader, but of an old term.
    for from in [2, 3] {
        node.step(Message {
            msg_type: MessageType::AppendResponse,
            from,
            to: 1,
            term: 4,
            index: 2,
            ..Message::default()
        })
        .unwrap();
    }
    assert_eq!(
        node.status().hard_state.commit,
        0,
        "Figure 8: not committed by counting"
    );
    // Once the term-4 entry reaches a majority, everything up to it commits.
    node.step(Message {
        msg_type: MessageType::AppendResponse,
        from: 2,
        to: 1,
        term: 4,
        index: 3,
        ..Message::default()
    })
    .unwrap();
    assert_eq!(node.status().hard_state.commit, 0);
    node.step(Message {
        msg_type: MessageType::AppendResponse,
        from: 3,
        to: 1,
        term: 4,
        index: 3,
        ..Message::default()
    })
    .unwrap();
    assert_eq!(node.status().hard_state.commit, 3);
}

#[test]
fn committed_entries_survive_leader_changes() {
    let mut net = Network::new(5, true, true);
    let mut proposed = Vec::new();
    for round in 0..5u8 {
        let leader = net.tick_until_leader(60).unwrap();
        let data: &'static [u8] = Box::leak(vec![b'a' + round].into_boxed_slice());
        net.propose(leader, data);
        proposed.push(Bytes::from_static(data));
        net.isolate(leader);
        net.tick_all(40);
        net.heal();
        net.tick_all(5);
    }
    net.tick_all(20);
    for id in 1..=5 {
        assert_eq!(net.applied_data(id), proposed, "node {id}");
    }
    net.check_safety();
}

#[test]
fn restart_restores_term_vote_commit_and_reapplies_nothing() {
    let mut net = Network::new(3, false, false);
    net.campaign(1);
    net.propose(1, b"a");
    let before = net.nodes[&2].status();
    net.restart(2, &config(2, false, false));
    let after = net.nodes[&2].status();
    assert_eq!(after.hard_state, before.hard_state);
    assert_eq!(after.applied, before.applied);
    net.propose(1, b"b");
    assert_eq!(
        net.applied_data(2),
        vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]
    );
}

#[test]
fn message_size_and_inflight_limits_bound_appends() {
    let ids = [1, 2];
    let mut c1 = config(1, false, false);
    c1.max_size_per_msg = 24 * 3 + 30; // about three small entries
    c1.max_inflight_msgs = 2;
    let mut net = Network::with_configs(vec![
        (c1, storage_with_log(&ids, &[], 0)),
        (config(2, false, false), storage_with_log(&ids, &[], 0)),
    ]);
    net.campaign(1);
    net.cut(2, 1); // no acks: the window fills
    for _ in 0..20 {
        net.node(1)
            .propose(Bytes::from_static(b"0123456789"))
            .unwrap();
    }
    net.stabilize();
    let appends: Vec<&Message> = net
        .delivered
        .iter()
        .filter(|m| m.msg_type == MessageType::Append && !m.entries.is_empty() && m.index >= 1)
        .collect();
    assert!(appends.iter().all(|m| m.entries.len() <= 3));
    assert!(
        appends.len() <= 2,
        "window of 2 appends, got {}",
        appends.len()
    );
    net.heal();
    net.tick_all(3);
    assert_eq!(net.applied[&2].len(), 20);
}

#[test]
fn crashed_follower_catches_up_after_restart() {
    let mut net = Network::new(3, true, true);
    net.campaign(1);
    net.crash(3);
    net.propose(1, b"a");
    net.propose(1, b"b");
    assert_eq!(net.commit(1), 3, "two of three commit");
    net.restart(3, &config(3, true, true));
    net.tick_all(3);
    assert_eq!(
        net.applied_data(3),
        vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]
    );
    net.check_safety();
}

#[test]
fn garbage_messages_are_refused_without_panicking() {
    let mut net = Network::new(3, true, true);
    net.campaign(1);
    let bad_to = Message {
        msg_type: MessageType::Append,
        from: 2,
        to: 9,
        term: 1,
        ..Message::default()
    };
    assert!(net.node(1).step(bad_to).is_err());
    let no_from = Message {
        msg_type: MessageType::Heartbeat,
        from: 0,
        to: 1,
        term: 1,
        ..Message::default()
    };
    assert!(net.node(1).step(no_from).is_err());
    // An ack for entries the leader never had is ignored.
    net.send(Message {
        msg_type: MessageType::AppendResponse,
        from: 2,
        to: 1,
        term: 1,
        index: 1000,
        ..Message::default()
    });
    assert_eq!(net.commit(1), 1);
    // A response from an unknown member is ignored.
    net.send(Message {
        msg_type: MessageType::AppendResponse,
        from: 42,
        to: 1,
        term: 1,
        index: 1,
        ..Message::default()
    });
    assert_eq!(net.leader(), Some(1));
}

#[test]
fn committed_entries_per_ready_are_bounded() {
    let mut cfg = config(1, false, false);
    cfg.max_committed_size_per_ready = 100;
    let mut node = RawNode::new(&cfg, storage_with_log(&[1], &[], 0)).unwrap();
    node.campaign().unwrap();
    for _ in 0..10 {
        node.propose(Bytes::from_static(b"0123456789")).unwrap();
    }
    let mut sizes = Vec::new();
    while node.has_ready() {
        let rd = node.ready();
        node.storage_mut().append(&rd.entries).unwrap();
        if !rd.committed_entries.is_empty() {
            sizes.push(rd.committed_entries.len());
        }
        node.advance();
    }
    assert_eq!(sizes.iter().sum::<usize>(), 11);
    assert!(sizes.len() >= 3, "split across Readies: {sizes:?}");
    assert!(sizes.iter().all(|n| *n <= 3));
}

#[test]
fn uncommitted_size_limit_applies_backpressure() {
    let mut cfg = config(1, false, false);
    cfg.max_uncommitted_entries_size = 25;
    let ids = [1, 2, 3];
    let mut net = Network::with_configs(vec![
        (cfg, storage_with_log(&ids, &[], 0)),
        (config(2, false, false), storage_with_log(&ids, &[], 0)),
        (config(3, false, false), storage_with_log(&ids, &[], 0)),
    ]);
    net.campaign(1);
    net.isolate(1);
    net.node(1)
        .propose(Bytes::from_static(b"0123456789"))
        .unwrap();
    net.node(1)
        .propose(Bytes::from_static(b"0123456789"))
        .unwrap();
    assert_eq!(
        net.node(1).propose(Bytes::from_static(b"0123456789")),
        Err(crate::ProposeError::Backpressure)
    );
    net.heal();
    net.tick_all(2);
    assert_eq!(net.applied[&1].len(), 2);
    net.propose(1, b"0123456789");
    assert_eq!(net.applied[&1].len(), 3, "room again once applied");
}

#[test]
fn corrupt_persistent_state_is_an_error() {
    let mut s = storage_with_log(&[1, 2, 3], &[1, 1], 1);
    let mut hs = s.hard_state();
    hs.commit = 5;
    s.set_hard_state(hs);
    assert!(matches!(
        RawNode::new(&config(1, false, false), s),
        Err(crate::RaftError::CorruptState(_))
    ));
    let s = storage_with_log(&[1, 2, 3], &[1, 1], 1);
    let mut cfg = config(1, false, false);
    cfg.applied = 2; // beyond commit 0
    assert!(matches!(
        RawNode::new(&cfg, s),
        Err(crate::RaftError::CorruptState(_))
    ));
    let mut bad = config(1, false, false);
    bad.election_tick = 0;
    assert!(matches!(
        RawNode::new(&bad, storage_with_log(&[1], &[], 0)),
        Err(crate::RaftError::Config(_))
    ));
}

#[test]
fn unreachable_follower_goes_back_to_probe() {
    use crate::tracker::ProgressState;
    let mut net = Network::new(3, false, false);
    net.campaign(1);
    net.propose(1, b"a");
    assert_eq!(
        net.nodes[&1].status().progress[&2].state,
        ProgressState::Replicate
    );
    net.node(1).report_unreachable(2);
    assert_eq!(
        net.nodes[&1].status().progress[&2].state,
        ProgressState::Probe
    );
    net.tick_all(2);
    assert_eq!(
        net.nodes[&1].status().progress[&2].state,
        ProgressState::Replicate,
        "back to pipelining once the follower answers"
    );
}

#[test]
fn async_persistence_counts_only_acknowledged_entries() {
    // A single voter takes several Readies before any fsync completes; each acknowledgement
    // commits exactly what it covers, and committed entries are handed out only once durable.
    let s = storage_with_log(&[1], &[], 0);
    let mut node = RawNode::new(&config(1, false, false), s).unwrap();
    node.campaign().unwrap();
    let rd1 = node.ready();
    assert_eq!(rd1.entries.len(), 1, "the leader's empty entry");
    node.storage_mut().append(&rd1.entries).unwrap();
    node.storage_mut().set_hard_state(rd1.hard_state.unwrap());
    node.propose(Bytes::from_static(b"a")).unwrap();
    let rd2 = node.ready();
    assert_eq!(
        rd2.entries.len(),
        1,
        "only the new entry: the first is in progress"
    );
    assert_eq!(rd2.entries[0].index, 2);
    node.storage_mut().append(&rd2.entries).unwrap();
    assert!(rd2.committed_entries.is_empty());
    // The first fsync completes: index 1 commits, index 2 does not.
    node.advance_append(1, rd1.entries[0].term);
    let rd3 = node.ready();
    assert_eq!(rd3.hard_state.unwrap().commit, 1);
    assert_eq!(rd3.committed_entries.len(), 1);
    assert!(rd3.entries.is_empty());
    node.storage_mut().set_hard_state(rd3.hard_state.unwrap());
    node.advance_apply();
    assert_eq!(node.status().applied, 1);
    assert!(
        !node.has_ready(),
        "nothing more until the next acknowledgement"
    );
    // A stale acknowledgement (wrong term) is ignored.
    node.advance_append(2, 99);
    assert!(!node.has_ready());
    node.advance_append(2, rd2.entries[0].term);
    let rd4 = node.ready();
    assert_eq!(rd4.hard_state.unwrap().commit, 2);
    assert_eq!(rd4.committed_entries.len(), 1);
    assert_eq!(rd4.committed_entries[0].data, Bytes::from_static(b"a"));
    node.advance_apply();
    assert_eq!(node.status().applied, 2);
}
