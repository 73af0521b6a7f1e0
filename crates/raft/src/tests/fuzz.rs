//! Arbitrary messages from the network never panic the state machine, and the Ready cycle
//! keeps its invariants (term and commit never decrease, persisted entries are contiguous).

use bytes::Bytes;
use proptest::prelude::*;

use crate::testing::{config, storage_with_log};
use crate::{
    ConfState, Entry, EntryKind, MemStorage, Message, MessageType, RawNode, Snapshot,
    SnapshotMetadata,
};

const TYPES: [MessageType; 13] = [
    MessageType::Append,
    MessageType::AppendResponse,
    MessageType::Vote,
    MessageType::VoteResponse,
    MessageType::PreVote,
    MessageType::PreVoteResponse,
    MessageType::Heartbeat,
    MessageType::HeartbeatResponse,
    MessageType::Snapshot,
    MessageType::TimeoutNow,
    MessageType::ReadIndex,
    MessageType::ReadIndexResponse,
    MessageType::Propose,
];

fn arb_message() -> impl Strategy<Value = Message> {
    (
        (0usize..TYPES.len(), 0u64..5, 0u64..6, 0u64..8),
        (0u64..8, 0u64..12, 0usize..4, any::<bool>()),
        (
            0u64..12,
            proptest::collection::vec(any::<u8>(), 0..9),
            0u8..4,
        ),
    )
        .prop_map(
            |((t, from, term, log_term), (idx_term, index, n, reject), (commit, ctx, kind))| {
                let msg_type = TYPES[t];
                let entries = (0..n as u64)
                    .map(|i| Entry {
                        index: index + 1 + i,
                        term: idx_term.max(log_term),
                        kind: if kind == 0 {
                            EntryKind::ConfChange
                        } else {
                            EntryKind::Normal
                        },
                        data: Bytes::from(ctx.clone()),
                    })
                    .collect();
                let snapshot = (msg_type == MessageType::Snapshot).then(|| Snapshot {
                    metadata: SnapshotMetadata {
                        index,
                        term: log_term,
                        conf_state: ConfState {
                            voters: (1..=(kind as u64 + 1)).collect(),
                            ..ConfState::default()
                        },
                    },
                    data: Bytes::new(),
                });
                Message {
                    msg_type,
                    to: 1,
                    from,
                    term,
                    log_term,
                    index,
                    entries,
                    commit,
                    snapshot,
                    reject,
                    reject_hint: idx_term,
                    context: Bytes::from(ctx),
                }
            },
        )
}

/// Persists one Ready like an embedder, checking the cycle's invariants.
fn drain(node: &mut RawNode<MemStorage>, prev_term: &mut u64, prev_commit: &mut u64) {
    while node.has_ready() {
        let rd = node.ready();
        if let Some(s) = rd.snapshot.clone() {
            node.storage_mut().apply_snapshot(s).unwrap();
        }
        node.storage_mut().append(&rd.entries).unwrap();
        if let Some(hs) = rd.hard_state {
            assert!(hs.term >= *prev_term, "term decreased");
            assert!(hs.commit >= *prev_commit, "commit decreased");
            *prev_term = hs.term;
            *prev_commit = hs.commit;
            node.storage_mut().set_hard_state(hs);
        }
        for e in &rd.committed_entries {
            assert!(e.index <= *prev_commit, "applying an uncommitted entry");
            if e.kind == EntryKind::ConfChange {
                if let Ok(cc) = crate::ConfChange::decode(&e.data) {
                    if let Ok(cs) = node.apply_conf_change(&cc) {
                        node.storage_mut().set_conf_state(cs);
                    }
                }
            }
        }
        node.advance();
    }
}

proptest! {
    // 256 cases by default; PROPTEST_CASES=N for a longer run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_messages_never_panic(
        msgs in proptest::collection::vec(arb_message(), 1..40),
        start_as_leader in any::<bool>(),
        ticks in proptest::collection::vec(0usize..3, 40),
    ) {
        let storage = storage_with_log(&[1, 2, 3], &[1, 1, 2], 2);
        let mut node = RawNode::new(&config(1, true, true), storage).unwrap();
        let (mut term, mut commit) = (2, 0);
        if start_as_leader {
            node.step(Message { msg_type: MessageType::PreVoteResponse, from: 2, to: 1, term: 3, ..Message::default() }).ok();
            node.campaign().unwrap();
            for from in [2, 3] {
                let _ = node.step(Message { msg_type: MessageType::PreVoteResponse, from, to: 1, term: 3, ..Message::default() });
            }
            for from in [2, 3] {
                let _ = node.step(Message { msg_type: MessageType::VoteResponse, from, to: 1, term: 3, ..Message::default() });
            }
        }
        drain(&mut node, &mut term, &mut commit);
        for (m, t) in msgs.into_iter().zip(ticks) {
            let _ = node.step(m);
            for _ in 0..t {
                node.tick();
            }
            let _ = node.propose(Bytes::from_static(b"p"));
            let _ = node.read_index(Bytes::from_static(b"r"));
            drain(&mut node, &mut term, &mut commit);
        }
    }
}
